package pool

import (
	"sync/atomic"
	"testing"
	"time"
)

type countTask struct {
	hits    []atomic.Int32
	workers []atomic.Int32
}

func (t *countTask) Run(worker, task int) {
	t.hits[task].Add(1)
	t.workers[worker].Add(1)
}

func TestRunCoversAllTasks(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		p := New(n)
		for _, spin := range []time.Duration{0, DefaultSpin} {
			p.SetSpin(spin)
			for _, tasks := range []int{0, 1, 2, 3, 7, 100} {
				for rep := 0; rep < 50; rep++ {
					ct := &countTask{hits: make([]atomic.Int32, tasks), workers: make([]atomic.Int32, n)}
					p.RunTask(tasks, ct)
					for i := range ct.hits {
						if h := ct.hits[i].Load(); h != 1 {
							t.Fatalf("n=%d tasks=%d: task %d ran %d times", n, tasks, i, h)
						}
					}
				}
			}
		}
		if p.Workers() != n {
			t.Fatalf("Workers() = %d, want %d", p.Workers(), n)
		}
		p.Close()
		p.Close() // idempotent
	}
}

// TestNewThenRun starts jobs immediately after New, before the helper
// goroutines have first run (a lost-job bug once hid there).
func TestNewThenRun(t *testing.T) {
	for i := 0; i < 200; i++ {
		p := New(2)
		var n atomic.Int32
		p.Run(2, func(_, _ int) { n.Add(1) })
		if n.Load() != 2 {
			t.Fatal("lost task")
		}
		p.Close()
	}
}

func TestUsesAllWorkers(t *testing.T) {
	p := New(2)
	defer p.Close()
	var seen [2]atomic.Bool
	deadline := time.Now().Add(5 * time.Second)
	for !(seen[0].Load() && seen[1].Load()) && time.Now().Before(deadline) {
		p.Run(2, func(w, _ int) {
			seen[w].Store(true)
			time.Sleep(100 * time.Microsecond) // give the other worker time to take a task
		})
	}
	if !(seen[0].Load() && seen[1].Load()) {
		t.Fatal("helper worker never ran a task")
	}
}

type nopTask struct{ sum atomic.Int64 }

func (t *nopTask) Run(_, task int) { t.sum.Add(int64(task)) }

func TestRunAllocs(t *testing.T) {
	p := New(2)
	defer p.Close()
	task := &nopTask{}
	fn := func(_, task int) {} // created once: converting it does not allocate per call
	p.RunTask(4, task)
	if a := testing.AllocsPerRun(100, func() { p.RunTask(4, task) }); a != 0 {
		t.Errorf("RunTask: %v allocations per call", a)
	}
	if a := testing.AllocsPerRun(100, func() { p.Run(4, fn) }); a != 0 {
		t.Errorf("Run: %v allocations per call", a)
	}
	p.SetSpin(0) // parked workers too
	if a := testing.AllocsPerRun(100, func() { p.RunTask(4, task) }); a != 0 {
		t.Errorf("RunTask after parking: %v allocations per call", a)
	}
}

func TestDefault(t *testing.T) {
	if Default() != Default() || Default().Workers() < 1 {
		t.Fatal("Default")
	}
}

// BenchmarkRun measures the round trip of an empty two-task job.
func BenchmarkRun(b *testing.B) {
	for _, spin := range []time.Duration{DefaultSpin, 0} {
		b.Run("spin="+spin.String(), func(b *testing.B) {
			p := New(2)
			defer p.Close()
			p.SetSpin(spin)
			task := &nopTask{}
			for b.Loop() {
				p.RunTask(2, task)
			}
		})
	}
}

func TestRunTaskNLimitsWorkers(t *testing.T) {
	p := New(4)
	defer p.Close()
	for rep := 0; rep < 100; rep++ {
		ct := &countTask{hits: make([]atomic.Int32, 50), workers: make([]atomic.Int32, 4)}
		p.RunTaskN(50, 2, ct)
		for i := range ct.hits {
			if ct.hits[i].Load() != 1 {
				t.Fatalf("task %d ran %d times", i, ct.hits[i].Load())
			}
		}
		if ct.workers[2].Load()+ct.workers[3].Load() != 0 {
			t.Fatal("RunTaskN(_, 2, _) used workers 2 or 3")
		}
	}
}
