package runner

import (
	"fmt"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/ir"
)

// maskRunner runs a sparse-training plan's mask program before the steps
// its schedule lists (plan.Schedule.Masks): the schedule is plan data, and
// the runner only follows it. A nil *maskRunner (plans without masks) does
// nothing.
type maskRunner struct {
	sched *ir.MaskSchedule
	step  []int32 // the mask program's "step" input
}

func newMaskRunner(p *ir.Plan, exe backends.Executable) (*maskRunner, error) {
	s := p.Schedule.Masks
	if s == nil {
		return nil, nil
	}
	pr := p.Program(s.Program)
	if pr == nil {
		return nil, fmt.Errorf("plan: the mask schedule names program %q, which the plan does not have", s.Program)
	}
	id := pr.Binding("step")
	if id < 0 {
		return nil, fmt.Errorf("plan: program %q has no step input", s.Program)
	}
	step := exe.I32(id)
	if len(step) != 1 {
		return nil, fmt.Errorf("plan: program %q: step is not an i32 scalar", s.Program)
	}
	return &maskRunner{sched: s, step: step}, nil
}

// before runs the mask program when the schedule lists step s (0-based).
func (m *maskRunner) before(exe backends.Executable, s int) error {
	if m == nil || !m.sched.Has(s) {
		return nil
	}
	m.step[0] = int32(s)
	if err := exe.Run(m.sched.Program); err != nil {
		return fmt.Errorf("step %d: masks: %w", s+1, err)
	}
	return nil
}
