package data

import (
	"slices"
	"testing"
)

// indexSplit is n examples whose features are (i, -i, 0.5) and label i%7,
// so a batch row tells which example it is.
func indexSplit(n int) Split {
	s := Split{X: make([]float32, 3*n), Y: make([]int32, n), N: n}
	for i := range n {
		s.X[3*i], s.X[3*i+1], s.X[3*i+2] = float32(i), -float32(i), 0.5
		s.Y[i] = int32(i % 7)
	}
	return s
}

// epochOrder returns the example indices of one epoch, checking each row.
func epochOrder(t *testing.T, b *Batcher, epoch int) []int {
	t.Helper()
	x, y := make([]float32, 3*b.BatchSize()), make([]int32, b.BatchSize())
	var order []int
	for k := range b.StepsPerEpoch() {
		b.Fill(epoch*b.StepsPerEpoch()+k, x, y)
		for r := range b.BatchSize() {
			i := int(x[3*r])
			if x[3*r+1] != -float32(i) || x[3*r+2] != 0.5 || y[r] != int32(i%7) {
				t.Fatalf("row %d of step %d is not an example: %v %d", r, k, x[3*r:3*r+3], y[r])
			}
			order = append(order, i)
		}
	}
	return order
}

func TestBatcherEpochs(t *testing.T) {
	const n, batch = 103, 10
	b := NewBatcher(indexSplit(n), 3, batch, true, 42)
	if b.StepsPerEpoch() != 10 {
		t.Fatalf("StepsPerEpoch = %d, want 10 (last partial batch dropped)", b.StepsPerEpoch())
	}
	e0, e1 := epochOrder(t, b, 0), epochOrder(t, b, 1)
	for _, o := range [][]int{e0, e1} {
		if len(o) != 100 || len(slices.Compact(slices.Sorted(slices.Values(o)))) != 100 {
			t.Fatalf("an epoch repeats examples: %v", o)
		}
	}
	if slices.Equal(e0, e1) {
		t.Error("epochs 0 and 1 have the same order")
	}
	// Over an epoch every example appears once: with n a multiple of the
	// batch, exactly the full set.
	full := NewBatcher(indexSplit(100), 3, batch, true, 42)
	if o := slices.Sorted(slices.Values(epochOrder(t, full, 3))); !slices.Equal(o, seq(100)) {
		t.Errorf("epoch 3 is not a permutation: %v", o)
	}
	// (seed, epoch) alone fixes the order, whatever was filled before.
	fresh := NewBatcher(indexSplit(n), 3, batch, true, 42)
	if !slices.Equal(epochOrder(t, fresh, 1), e1) || !slices.Equal(epochOrder(t, fresh, 0), e0) {
		t.Error("same (seed, epoch), different order")
	}
	if other := NewBatcher(indexSplit(n), 3, batch, true, 43); slices.Equal(epochOrder(t, other, 0), e0) {
		t.Error("another seed, same order")
	}
	// Without shuffle: file order every epoch.
	plain := NewBatcher(indexSplit(n), 3, batch, false, 42)
	if !slices.Equal(epochOrder(t, plain, 2), seq(100)) {
		t.Error("unshuffled order is not the file order")
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestBatcherNoAlloc(t *testing.T) {
	b := NewBatcher(indexSplit(1000), 3, 32, true, 1)
	x, y := make([]float32, 3*32), make([]int32, 32)
	step := 0
	// Steps of 7 cross an epoch (31 steps) every few runs.
	if a := testing.AllocsPerRun(200, func() { b.Fill(step, x, y); step += 7 }); a != 0 {
		t.Errorf("Fill allocates %v times per call", a)
	}
	p := b.Prefetcher(0)
	defer p.Close()
	if a := testing.AllocsPerRun(200, func() { p.Next() }); a != 0 {
		t.Errorf("Prefetcher.Next allocates %v times per call", a)
	}
}

func TestPrefetcherMatchesFill(t *testing.T) {
	b := NewBatcher(indexSplit(250), 3, 16, true, 9)
	x, y := make([]float32, 3*16), make([]int32, 16)
	const start = 29 // mid-epoch: resume
	p := b.Prefetcher(start)
	for step := start; step < start+60; step++ {
		px, py := p.Next()
		b.Fill(step, x, y)
		if !slices.Equal(px, x) || !slices.Equal(py, y) {
			t.Fatalf("step %d: prefetched batch differs from Fill", step)
		}
	}
	p.Close()
	p.Close()
}

func TestEvalBatches(t *testing.T) {
	s := indexSplit(45)
	e := EvalBatches(s, 20)
	if e.Len() != 3 {
		t.Fatalf("Len = %d, want 3", e.Len())
	}
	var seen []int
	for i := range e.Len() {
		x, y, n := e.Batch(i)
		if len(x) != 3*20 || len(y) != 20 {
			t.Fatalf("batch %d has %d values, %d labels", i, len(x), len(y))
		}
		for r := range 20 {
			if r < n {
				seen = append(seen, int(x[3*r]))
			} else if x[3*r+2] != 0 || y[r] != 0 {
				t.Fatalf("padding row %d of batch %d is not zero", r, i)
			}
		}
	}
	if !slices.Equal(seen, seq(45)) {
		t.Errorf("eval batches cover %v", seen)
	}
	if a := testing.AllocsPerRun(100, func() { e.Batch(2); e.Batch(0) }); a != 0 {
		t.Errorf("Batch allocates %v times", a)
	}
	if EvalBatches(Split{}, 8).Len() != 0 {
		t.Error("empty split has batches")
	}
}
