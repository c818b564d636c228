package lowering

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/expc-dev/expc/ir"
)

// ErrorKind says how a pass failed.
type ErrorKind uint8

const (
	// Failed: the pass returned an error (for example a spec the plan cannot express).
	Failed ErrorKind = iota
	// Internal: the pass panicked; a compiler bug.
	Internal
	// InvalidIR: the verifier rejected what the pass produced; a compiler bug.
	InvalidIR
)

// PassError is an error from one pass.
type PassError struct {
	Pass   string
	Kind   ErrorKind
	Err    error
	Detail string // the stack of a panic; not part of Error()
}

func (e *PassError) Error() string {
	switch e.Kind {
	case Internal:
		return fmt.Sprintf("internal error in pass %s: %v", e.Pass, e.Err)
	case InvalidIR:
		return fmt.Sprintf("pass %s produced invalid IR: %v", e.Pass, e.Err)
	}
	return fmt.Sprintf("pass %s: %v", e.Pass, e.Err)
}

func (e *PassError) Unwrap() error { return e.Err }

// Run runs Pipeline on u as cfg says and returns each pass's wall time
// (Hash is left for the caller). On error the timings so far come back too.
func Run(u *Unit, cfg Config) (*ir.Timings, error) {
	return runPasses(u, Pipeline, cfg)
}

func runPasses(u *Unit, passes []Pass, cfg Config) (*ir.Timings, error) {
	timings := &ir.Timings{Passes: []ir.PassTiming{}}
	enabled, err := enabledPasses(passes, cfg)
	if err != nil {
		return timings, err
	}
	dump, err := dumpSet(passes, cfg)
	if err != nil {
		return timings, err
	}
	if u.Plan == nil {
		u.Plan = &ir.Plan{}
	}
	u.seed = cfg.Seed
	if cfg.Verify && u.Module != nil {
		if err := verifyModule(u.Module); err != nil {
			return timings, fmt.Errorf("invalid input module: %w", err)
		}
	}
	start := time.Now()
	for _, p := range enabled {
		if p.Target != "" && p.Target != u.Plan.Target || p.Applies != nil && !p.Applies(u) {
			continue
		}
		before := opCount(u)
		t0 := time.Now()
		changed, err := runOne(p, u)
		timings.Passes = append(timings.Passes, ir.PassTiming{Name: p.Name, Seconds: time.Since(t0).Seconds()})
		if err != nil {
			timings.Total = time.Since(start).Seconds()
			return timings, err
		}
		u.Plan.Passes = append(u.Plan.Passes, ir.PassRecord{
			Name: p.Name, Changed: changed, Before: before, After: opCount(u), Note: u.note})
		u.note = ""
		if cfg.Verify {
			if err := verifyStage(p.Stage, u); err != nil {
				timings.Total = time.Since(start).Seconds()
				return timings, &PassError{Pass: p.Name, Kind: InvalidIR, Err: err}
			}
		}
		if dump[p.Name] && cfg.Dump != nil {
			if err := writeDump(cfg, p, u); err != nil {
				return timings, err
			}
		}
	}
	timings.Total = time.Since(start).Seconds()
	return timings, nil
}

// runOne runs a pass, turning a panic into an Internal PassError.
func runOne(p Pass, u *Unit) (changed bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			changed = false
			err = &PassError{Pass: p.Name, Kind: Internal, Err: fmt.Errorf("%v", r), Detail: string(debug.Stack())}
		}
	}()
	changed, err = p.Run(u)
	if err != nil {
		if pe := (*PassError)(nil); !errors.As(err, &pe) {
			err = &PassError{Pass: p.Name, Kind: Failed, Err: err}
		}
	}
	return changed, err
}

func verifyStage(s Stage, u *Unit) error {
	if s == Graph {
		return verifyModule(u.Module)
	}
	return verifyPlan(u.Plan)
}

func writeDump(cfg Config, p Pass, u *Unit) error {
	var text string
	if p.Stage == Graph {
		text = printModule(u.Module)
	} else {
		text = printPlan(u.Plan)
	}
	if _, err := fmt.Fprintf(cfg.Dump, "// after pass %s\n%s", p.Name, text); err != nil {
		return fmt.Errorf("writing the dump after pass %s: %w", p.Name, err)
	}
	if !strings.HasSuffix(text, "\n") {
		_, err := fmt.Fprintln(cfg.Dump)
		return err
	}
	return nil
}

// opCount is the size a PassRecord reports: kernels once there are
// programs, graph instructions before.
func opCount(u *Unit) int {
	n := 0
	if u.Plan != nil && len(u.Plan.Programs) > 0 {
		for _, pr := range u.Plan.Programs {
			n += len(pr.Kernels)
		}
		return n
	}
	if u.Module != nil {
		for _, f := range u.Module.Funcs {
			n += len(f.Body)
		}
	}
	return n
}

// enabledPasses applies OptLevel and Disabled, and checks the order of what is left.
func enabledPasses(passes []Pass, cfg Config) ([]Pass, error) {
	if cfg.OptLevel < 0 {
		return nil, fmt.Errorf("optimization level %d is invalid (want 0 or 1)", cfg.OptLevel)
	}
	byName := map[string]Pass{}
	for _, p := range passes {
		if _, dup := byName[p.Name]; dup || p.Name == "" || p.Name == "all" {
			return nil, fmt.Errorf("pipeline: pass name %q is empty, reserved or used twice", p.Name)
		}
		byName[p.Name] = p
	}
	var optional []string
	for _, p := range passes {
		if !p.Required {
			optional = append(optional, p.Name)
		}
	}
	disabled := map[string]bool{}
	for _, name := range cfg.Disabled {
		p, ok := byName[name]
		switch {
		case !ok:
			return nil, fmt.Errorf("cannot disable pass %q: no such pass (passes that can be disabled: %s)",
				name, strings.Join(optional, ", "))
		case p.Required:
			return nil, fmt.Errorf("cannot disable pass %q: it is required (passes that can be disabled: %s)",
				name, strings.Join(optional, ", "))
		}
		disabled[name] = true
	}
	var out []Pass
	for _, p := range passes {
		if disabled[p.Name] || (cfg.OptLevel == 0 && !p.Required) {
			continue
		}
		out = append(out, p)
	}
	return out, checkOrder(passes, out)
}

// checkOrder checks that every After constraint holds among the enabled
// passes, that After names only passes of the pipeline, and that graph
// passes come before plan passes (a graph rewrite after kernel selection
// would be lost).
func checkOrder(all, enabled []Pass) error {
	known := map[string]bool{}
	for _, p := range all {
		known[p.Name] = true
	}
	pos := map[string]int{}
	for i, p := range enabled {
		pos[p.Name] = i
	}
	sawPlan := ""
	for i, p := range enabled {
		for _, a := range p.After {
			if !known[a] {
				return fmt.Errorf("pipeline: pass %s must run after %q, which is not a pass", p.Name, a)
			}
			if j, ok := pos[a]; ok && j > i {
				return fmt.Errorf("pipeline: pass %s must run after %s, but runs before it", p.Name, a)
			}
		}
		if p.Stage == PlanStage && sawPlan == "" {
			sawPlan = p.Name
		}
		if p.Stage == Graph && sawPlan != "" {
			return fmt.Errorf("pipeline: graph pass %s runs after plan pass %s", p.Name, sawPlan)
		}
	}
	return nil
}

func dumpSet(passes []Pass, cfg Config) (map[string]bool, error) {
	set := map[string]bool{}
	names := []string{"all"}
	for _, p := range passes {
		names = append(names, p.Name)
	}
	for _, name := range cfg.DumpAfter {
		if name == "all" {
			for _, p := range passes {
				set[p.Name] = true
			}
			continue
		}
		if !slices.Contains(names, name) {
			return nil, fmt.Errorf("cannot dump after pass %q: no such pass (valid: %s)", name, strings.Join(names, ", "))
		}
		set[name] = true
	}
	if len(set) > 0 && cfg.Dump == nil {
		return nil, fmt.Errorf("dump after %s requested without a writer", strings.Join(cfg.DumpAfter, ", "))
	}
	return set, nil
}
