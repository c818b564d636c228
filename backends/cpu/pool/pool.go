// Package pool is a persistent worker pool for CPU kernels.
//
// A training step launches dozens of kernels that each run for tens to
// hundreds of microseconds, so starting goroutines (or allocating closures)
// per kernel is too expensive. A Pool keeps n-1 goroutines alive; the caller
// of Run acts as worker 0. Idle workers spin for a short while before they
// park, so back-to-back kernels wake them in well under a microsecond, and a
// job never waits for a parked worker to wake: if the caller runs out of
// tasks first, late workers simply do not join.
package pool

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Task is a unit of parallel work. Run is called once for every task index in
// [0, tasks) passed to (*Pool).RunTask; worker identifies the calling worker
// (0 is the goroutine that called RunTask) so that implementations can use
// per-worker scratch memory without locking. Two calls with the same worker
// never overlap.
//
// Passing a pointer to a long-lived struct as a Task does not allocate, which
// is why the hot kernels use this form instead of closures.
type Task interface {
	Run(worker, task int)
}

// Func adapts a function to a Task. A Func converted once and reused does not
// allocate; a closure created per call does (it escapes to the workers).
type Func func(worker, task int)

// Run calls f.
func (f Func) Run(worker, task int) { f(worker, task) }

// DefaultSpin is how long an idle worker busy-waits for the next job before it
// parks. It bridges the gaps between the kernels of a training step without
// burning a core for long once the program does something else.
const DefaultSpin = 100 * time.Microsecond

const (
	closedBit = 1 << 31       // in join: the job takes no more helpers
	countMask = closedBit - 1 // in join: helpers running the job
	closing   = 0xffffffff    // in state's low half: Close was called
)

// Pool runs tasks over a fixed set of workers. Run, RunTask and RunTaskN are
// safe to call from several goroutines (jobs are serialised) but must not be
// called from inside a task of the same pool. A task that panics on a helper
// goroutine crashes the program.
type Pool struct {
	n    int
	spin atomic.Int64 // time.Duration

	mu sync.Mutex // serialises jobs

	// state is the wake-up signal: job generation (high 32 bits) and the
	// number of helpers invited (low 32 bits), read in one load so a worker
	// never pairs a generation with another job's count.
	state atomic.Uint64
	_     [56]byte // keep the hot words below on their own cache lines

	// join admits helpers to the current job: generation (high 32 bits),
	// closedBit, and the count of helpers running it. The caller closes it
	// when it runs out of tasks and waits only for helpers that joined.
	join atomic.Uint64
	_    [56]byte

	next atomic.Int64 // next task index to hand out
	_    [56]byte

	task   Task
	tasks  int64
	closed bool

	workers []*worker
	wg      sync.WaitGroup
}

type worker struct {
	asleep atomic.Int32  // 1 while parked (or about to park) on wake
	wake   chan struct{} // buffered(1): a token that ends one park
	_      [48]byte
}

// New starts a pool of n workers: n-1 goroutines plus the caller of Run.
// n < 1 is treated as 1.
func New(n int) *Pool {
	n = max(n, 1)
	p := &Pool{n: n}
	p.spin.Store(int64(DefaultSpin))
	p.join.Store(closedBit)
	p.workers = make([]*worker, n)
	for i := 1; i < n; i++ {
		w := &worker{wake: make(chan struct{}, 1)}
		p.workers[i] = w
		p.wg.Add(1)
		go p.loop(i, w)
	}
	return p
}

var (
	defOnce sync.Once
	def     *Pool
)

// Default returns a process-wide pool with runtime.GOMAXPROCS(0) workers,
// created on first use and never closed.
func Default() *Pool {
	defOnce.Do(func() { def = New(runtime.GOMAXPROCS(0)) })
	return def
}

// Workers reports the number of workers, including the caller of Run.
func (p *Pool) Workers() int { return p.n }

// SetSpin sets how long idle workers busy-wait before parking (0 parks at
// once). It takes effect the next time a worker goes idle.
func (p *Pool) SetSpin(d time.Duration) { p.spin.Store(int64(d)) }

// Run calls fn(worker, task) for every task in [0, tasks) and returns when all
// calls have returned. fn is called from several goroutines at once.
// Prefer RunTask with a reused Task value in hot paths: a closure passed here
// escapes and so costs one allocation per call unless it is created once.
func (p *Pool) Run(tasks int, fn func(worker, task int)) {
	p.RunTaskN(tasks, p.n, Func(fn))
}

// RunTask calls t.Run(worker, task) for every task in [0, tasks) across the
// workers and returns when all calls have returned. Tasks are handed out
// dynamically, one index at a time, so uneven tasks balance themselves.
func (p *Pool) RunTask(tasks int, t Task) { p.RunTaskN(tasks, p.n, t) }

// RunTaskN is RunTask on at most maxWorkers workers (worker ids stay below
// maxWorkers), for jobs too small to feed the whole pool or whose per-worker
// buffers were sized for fewer workers.
func (p *Pool) RunTaskN(tasks, maxWorkers int, t Task) {
	if tasks <= 0 {
		return
	}
	helpers := min(tasks, p.n, max(maxWorkers, 1)) - 1
	if helpers <= 0 {
		for i := 0; i < tasks; i++ {
			t.Run(0, i)
		}
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		panic("pool: Run on closed Pool")
	}
	p.task, p.tasks = t, int64(tasks)
	p.next.Store(0)
	gen := (p.state.Load()>>32 + 1) & 0xffffffff
	p.join.Store(gen << 32) // open, nobody running yet
	p.state.Store(gen<<32 | uint64(helpers))
	for i := 1; i <= helpers; i++ {
		w := p.workers[i]
		if w.asleep.CompareAndSwap(1, 0) {
			w.wake <- struct{}{}
		}
	}
	p.work(0)
	// Out of tasks: admit no more helpers and wait for those still running
	// theirs. Spin, then yield: they finish within about one task.
	p.join.Or(closedBit)
	for i := 0; p.join.Load()&countMask != 0; i++ {
		if i > 1000 {
			runtime.Gosched()
		}
	}
	p.task = nil
	p.mu.Unlock()
}

// work runs tasks until none are left.
func (p *Pool) work(id int) {
	t, n := p.task, p.tasks
	for {
		i := p.next.Add(1) - 1
		if i >= n {
			return
		}
		t.Run(id, int(i))
	}
}

func (p *Pool) loop(id int, w *worker) {
	defer p.wg.Done()
	// Generation 0 is the state before the first job. (Loading it here
	// instead could miss a job started before this goroutine ran.)
	var seen uint64
	for {
		s := p.waitNew(w, seen)
		seen = s >> 32
		invited := s & 0xffffffff
		if invited == closing {
			return
		}
		if uint64(id) <= invited && p.tryJoin(seen) {
			p.work(id)
			p.join.Add(^uint64(0)) // leave: count-1
		}
	}
}

// tryJoin registers the calling helper with job gen unless that job is
// already closed (or over).
func (p *Pool) tryJoin(gen uint64) bool {
	for {
		v := p.join.Load()
		if v>>32 != gen || v&closedBit != 0 {
			return false
		}
		if p.join.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// waitNew returns the first state whose generation differs from seen,
// spinning for the pool's spin time before parking.
func (p *Pool) waitNew(w *worker, seen uint64) uint64 {
	if s := p.spinWait(seen); s>>32 != seen {
		return s
	}
	for {
		w.asleep.Store(1)
		if s := p.state.Load(); s>>32 != seen {
			// A job arrived while we were deciding to park. If Run already
			// claimed our wake-up token it has sent (or will send) it; take
			// it so the channel is empty next time.
			if !w.asleep.CompareAndSwap(1, 0) {
				<-w.wake
			}
			return s
		}
		<-w.wake
		if s := p.state.Load(); s>>32 != seen {
			return s
		}
	}
}

func (p *Pool) spinWait(seen uint64) uint64 {
	spin := time.Duration(p.spin.Load())
	if spin <= 0 {
		return p.state.Load()
	}
	start := time.Now()
	for i := 1; ; i++ {
		s := p.state.Load()
		if s>>32 != seen {
			return s
		}
		if i&255 == 0 {
			if time.Since(start) > spin {
				return s
			}
			if i&4095 == 0 {
				runtime.Gosched() // let other goroutines on this P run
			}
		}
	}
}

// Close stops the helper goroutines and waits for them to exit. The pool must
// not be used afterwards. Closing the Default pool is not allowed.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.n == 1 {
		return
	}
	gen := (p.state.Load()>>32 + 1) & 0xffffffff
	p.state.Store(gen<<32 | closing)
	for _, w := range p.workers[1:] {
		if w.asleep.CompareAndSwap(1, 0) {
			w.wake <- struct{}{}
		}
	}
	p.wg.Wait()
}
