package sparse

import (
	"sync"
	"testing"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// TestRangeTaskCoversOnce checks that a parallel loop visits every index
// exactly once, in chunks that start on whole grains, on one worker and on
// several, for ranges that do and do not divide evenly.
func TestRangeTaskCoversOnce(t *testing.T) {
	for _, workers := range []int{1, 2, 3} {
		p := pool.New(workers)
		for _, c := range []struct{ n, grain int }{{1, 1}, {7, 1}, {64, 2}, {2752, 32}, {2753, 32}, {100, 16}, {5, 16}} {
			var mu sync.Mutex
			seen := make([]int, c.n)
			var task rangeTask
			task.run(p, c.n, c.grain, func(_, lo, hi int) {
				mu.Lock()
				defer mu.Unlock()
				if lo%c.grain != 0 {
					t.Errorf("workers %d, n %d, grain %d: a chunk starts at %d", workers, c.n, c.grain, lo)
				}
				for i := lo; i < hi; i++ {
					seen[i]++
				}
			})
			for i, v := range seen {
				if v != 1 {
					t.Fatalf("workers %d, n %d, grain %d: index %d visited %d times", workers, c.n, c.grain, i, v)
				}
			}
		}
		p.Close()
	}
}
