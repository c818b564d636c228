package lowering

import "github.com/expc-dev/expc/ir"

// PlanModule lowers a module built outside the compiler (a loss graph for a
// test or a benchmark) into a plan for target: the plan header holds only
// the name, target and options; Run fills the rest.
func PlanModule(mod *ir.Module, target string, cfg Config) (*ir.Plan, error) {
	plan := &ir.Plan{Format: ir.PlanFormat, Name: mod.Name, Target: target,
		Options: ir.Options{OptLevel: cfg.OptLevel, DisabledPass: cfg.Disabled}}
	if _, err := Run(&Unit{Module: mod, Plan: plan}, cfg); err != nil {
		return nil, err
	}
	return plan, nil
}
