package sparse

import (
	"sync/atomic"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// The N:4 forward runs as one parallel job. Column block by column block
// (nmColBlock panels of 32), the block's kept weights are packed into one
// of two buffers, and then every row panel of X passes the block while
// they are in L2. The job is a list of steps the workers take in order:
// the packing of block b+1 comes before the last row panels of block b,
// so it is done by the time block b+1 starts, and no worker waits at a
// barrier between blocks. (With a barrier after every pass, twelve a call
// at 1024 columns, a worker paused by another program on its core held
// the other up at each.)
//
// A step waits only for steps earlier in the list: a block's row panels
// for its packing, and the packing of block b+2 (into b's buffer) for
// b's row panels. A step is run by whoever takes it, so one worker alone
// runs the list in order and never waits.

// fwdStep is a step of the forward: the packing of groups [lo, hi) of
// column block jb, or its row panels [lo, hi).
type fwdStep struct {
	pack       bool
	jb, lo, hi int32
}

// nmFwdJob is the forward's list of steps and, per column block, how many
// of its packing and row-panel steps are done.
type nmFwdJob struct {
	k                 *NM
	steps             []fwdStep
	packN, mulN       int32 // steps per block
	packDone, mulDone []atomic.Int32
}

const (
	nmPackStep  = 16 // forward: groups a packing step
	nmFwdAhead  = 4  // forward: a block's last row-panel steps, after the next block's packing
	nmFwdBuffer = 2  // forward: packed column blocks in flight
)

// plan lays out the steps for a call on the given number of workers.
func (j *nmFwdJob) plan(workers int) {
	k := j.k
	blocks := ceilDiv(k.panels, nmColBlock)
	rowPanels := ceilDiv(k.s.Batch, nmRows)
	// Row panels two a step at least, up to tasksPerWorker steps a worker
	// a block (as the barrier-separated passes had).
	per := ceilDiv(ceilDiv(rowPanels, min(tasksPerWorker*workers, max(1, rowPanels/2))), 2) * 2
	j.steps = j.steps[:0]
	pack := func(jb int) {
		for g := 0; g < k.groups; g += nmPackStep {
			j.steps = append(j.steps, fwdStep{true, int32(jb), int32(g), int32(min(g+nmPackStep, k.groups))})
		}
	}
	mul := func(jb, q0, q1 int) {
		for q := q0; q < q1; q += per {
			j.steps = append(j.steps, fwdStep{false, int32(jb), int32(q), int32(min(q+per, q1))})
		}
	}
	pack(0)
	split := max(0, rowPanels-nmFwdAhead*per)
	for jb := range blocks {
		mul(jb, 0, split)
		if jb+1 < blocks {
			pack(jb + 1)
		}
		mul(jb, split, rowPanels)
	}
	j.packN = int32(ceilDiv(k.groups, nmPackStep))
	j.mulN = int32(ceilDiv(split, per) + ceilDiv(rowPanels-split, per))
	if len(j.packDone) < blocks {
		j.packDone = make([]atomic.Int32, blocks)
		j.mulDone = make([]atomic.Int32, blocks)
	}
	for i := range blocks {
		j.packDone[i].Store(0)
		j.mulDone[i].Store(0)
	}
}

func (j *nmFwdJob) Run(w, task int) {
	st := j.steps[task]
	jb := int(st.jb)
	if st.pack {
		if jb >= nmFwdBuffer {
			waitFor(&j.mulDone[jb-nmFwdBuffer], j.mulN)
		}
		j.k.packChunk(jb, int(st.lo), int(st.hi))
		j.packDone[jb].Add(1)
		return
	}
	waitFor(&j.packDone[jb], j.packN)
	j.k.forwardRows(w, jb, int(st.lo), int(st.hi))
	j.mulDone[jb].Add(1)
}

// run runs the forward's steps on p (nil: in order, here).
func (j *nmFwdJob) run(p *pool.Pool, workers int) {
	j.plan(workers)
	if p == nil {
		for i := range j.steps {
			j.Run(0, i)
		}
		return
	}
	p.RunTask(len(j.steps), j)
}
