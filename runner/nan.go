package runner

import (
	"fmt"
	"math"
	"strings"

	"github.com/expc-dev/expc/ir"
)

// snapshotEvery is how often (in steps) the state is copied in memory so
// that a non-finite loss can be replayed to the kernel that produced it.
const snapshotEvery = 100

// snapshot is the persistent state before step `step` (0-based) ran.
type snapshot struct {
	step  int
	state []byte
	ok    bool
}

// startSnapshots takes the snapshot of the session's first step and sizes
// the second buffer like it, so that later snapshots do not allocate.
func (t *trainer) startSnapshots() {
	t.snapshot(t.start)
	t.snaps[1].state = make([]byte, 0, cap(t.snaps[0].state))
}

// snapshot saves the state before step s, reusing the older snapshot's
// buffer; the previous one is kept, so that a non-finite value written by
// the update of the step just before a snapshot can still be replayed.
func (t *trainer) snapshot(s int) {
	t.snaps[0], t.snaps[1] = t.snaps[1], t.snaps[0]
	sn := &t.snaps[0]
	sn.state = t.exe.SaveState(sn.state[:0])
	sn.step, sn.ok = s, true
}

// LossError reports a training loss that is NaN or infinite.
type LossError struct {
	Step       int        // step whose loss was not finite (1-based)
	Value      string     // "NaN", "+Inf" or "-Inf"
	Kernel     *ir.Kernel // first kernel that wrote a non-finite value; nil when not found
	KernelStep int        // the step that kernel ran in: Step, or Step-1 when the previous update wrote it
	Detail     string     // why Kernel is nil
}

func (e *LossError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "loss is %s at step %d; ", e.Value, e.Step)
	k := e.Kernel
	if k == nil {
		b.WriteString(e.Detail)
		return b.String()
	}
	fmt.Fprintf(&b, "the first non-finite value was produced by kernel %s (op %s", k.Name, k.Op)
	if !k.Loc.IsZero() {
		fmt.Fprintf(&b, ", from %s:%d:%d", k.Loc.File, k.Loc.Line, k.Loc.Col)
	}
	if len(k.FusedFrom) > 0 {
		fmt.Fprintf(&b, ", fused from [%s]", strings.Join(k.FusedFrom, " "))
	}
	b.WriteString(")")
	if e.KernelStep != e.Step {
		fmt.Fprintf(&b, " during step %d", e.KernelStep)
	}
	return b.String()
}

// nonFinite diagnoses a non-finite loss at step s (0-based): it restores a
// snapshot from before step s-1, replays the steps up to s-2 with Run and
// runs steps s-1 and s with RunChecked, which stops at the first kernel
// writing a NaN or Inf. Batches are a pure function of the step, so the
// replay recomputes what the run did. The state is left undefined.
func (t *trainer) nonFinite(s int, loss float32) error {
	e := &LossError{Step: s + 1, Value: valueName(float64(loss))}
	sn := &t.snaps[0]
	if sn.step >= s && t.snaps[1].ok {
		sn = &t.snaps[1]
	}
	if !sn.ok || sn.step > s {
		e.Detail = "no snapshot to replay it from"
		return e
	}
	if err := t.exe.LoadState(sn.state); err != nil {
		e.Detail = "restoring the snapshot to replay it failed: " + err.Error()
		return e
	}
	checked := max(sn.step, s-1)
	for r := sn.step; r <= s; r++ {
		t.batcher.Fill(r, t.x, t.y)
		t.stepIn[0] = int32(r)
		if r < checked {
			if err := t.exe.Run("train"); err != nil {
				e.Detail = fmt.Sprintf("replaying step %d failed: %v", r+1, err)
				return e
			}
			continue
		}
		k, err := t.exe.RunChecked("train")
		if err != nil {
			e.Detail = fmt.Sprintf("the checked replay of step %d failed: %v", r+1, err)
			return e
		}
		if k >= 0 {
			e.KernelStep = r + 1
			if k < len(t.train.Kernels) {
				kn := t.train.Kernels[k]
				if kn.Name == "" {
					kn.Name = fmt.Sprintf("k%d", k)
				}
				e.Kernel = &kn
			} else {
				e.Kernel = &ir.Kernel{Name: fmt.Sprintf("k%d", k), Op: "unknown"}
			}
			return e
		}
	}
	e.Detail = fmt.Sprintf("a checked replay of steps %d-%d did not reproduce it (is the backend deterministic?)", sn.step+1, s+1)
	return e
}

func valueName(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return "NaN"
}
