package lowering

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/expc-dev/expc/ir"
)

func TestPipelineIsWellFormed(t *testing.T) {
	if err := checkOrder(Pipeline, Pipeline); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var required []string
	for _, p := range Pipeline {
		if seen[p.Name] || p.Run == nil || p.Doc == "" {
			t.Errorf("pass %q: duplicate name, no Run or no Doc", p.Name)
		}
		seen[p.Name] = true
		if p.Required {
			required = append(required, p.Name)
		}
	}
	var requiredCPU []string
	for _, p := range Pipeline {
		if p.Required && (p.Target == "" || p.Target == "cpu") {
			requiredCPU = append(requiredCPU, p.Name)
		}
	}
	if want := []string{"select-kernels", "schedule", "plan-memory"}; !slices.Equal(requiredCPU, want) {
		t.Errorf("required passes for cpu %v, want %v (all required: %v)", requiredCPU, want, required)
	}
}

func nop(changed bool) func(*Unit) (bool, error) {
	return func(*Unit) (bool, error) { return changed, nil }
}

func TestOrderConstraintsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		passes []Pass
		cfg    Config
		want   string
	}{
		{"after violated", []Pass{{Name: "b", After: []string{"a"}, Run: nop(false)}, {Name: "a", Run: nop(false)}},
			Config{OptLevel: 1}, "pass b must run after a, but runs before it"},
		{"after names no pass", []Pass{{Name: "a", After: []string{"typo"}, Run: nop(false)}},
			Config{OptLevel: 1}, `pass a must run after "typo", which is not a pass`},
		{"graph after plan", []Pass{{Name: "p", Stage: PlanStage, Run: nop(false)}, {Name: "g", Stage: Graph, Run: nop(false)}},
			Config{OptLevel: 1}, "graph pass g runs after plan pass p"},
		{"duplicate name", []Pass{{Name: "a", Run: nop(false)}, {Name: "a", Run: nop(false)}},
			Config{OptLevel: 1}, `pass name "a" is empty, reserved or used twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			for i := range tc.passes {
				tc.passes[i].Run = func(*Unit) (bool, error) { ran = true; return false, nil }
			}
			_, err := runPasses(newUnit(&ir.Module{}), tc.passes, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if ran {
				t.Error("a pass ran although the pipeline is invalid")
			}
		})
	}
	// A constraint on a pass that does not run is no constraint.
	passes := []Pass{{Name: "b", After: []string{"a"}, Run: nop(false)}, {Name: "a", Run: nop(false)}}
	if _, err := runPasses(newUnit(&ir.Module{}), passes, Config{OptLevel: 1, Disabled: []string{"a"}}); err != nil {
		t.Fatalf("disabled pass still constrains: %v", err)
	}
}

func TestDisablePass(t *testing.T) {
	var optional []string
	for _, p := range Pipeline {
		if !p.Required {
			optional = append(optional, p.Name)
		}
	}
	list := strings.Join(optional, ", ")
	for _, tc := range []struct{ name, want string }{
		{"nope", `cannot disable pass "nope": no such pass (passes that can be disabled: ` + list + `)`},
		{"schedule", `cannot disable pass "schedule": it is required (passes that can be disabled: ` + list + `)`},
	} {
		_, err := Run(newUnit(mlpModule()), Config{OptLevel: 1, Disabled: []string{tc.name}})
		if err == nil || err.Error() != tc.want {
			t.Errorf("disable %s: error %v, want %q", tc.name, err, tc.want)
		}
	}

	u := newUnit(mlpModule())
	if _, err := Run(u, Config{OptLevel: 1, Verify: true, Disabled: []string{"fuse-elementwise", "cse"}}); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(recordedPasses(u))
	for _, name := range []string{"fuse-elementwise", "cse"} {
		if slices.Contains(got, name) {
			t.Errorf("disabled pass %s was recorded: %v", name, got)
		}
	}
	for _, name := range []string{"canonicalize", "dce", "select-kernels", "schedule", "plan-memory"} {
		if !slices.Contains(got, name) {
			t.Errorf("pass %s did not run: %v", name, got)
		}
	}
	for _, pr := range u.Plan.Programs {
		for _, k := range pr.Kernels {
			if len(k.FusedFrom) > 0 {
				t.Errorf("fusion disabled, but %s %s is fused from %v", pr.Name, k.Op, k.FusedFrom)
			}
		}
	}

	u = newUnit(mlpModule())
	if _, err := Run(u, Config{OptLevel: 0, Verify: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := recordedPasses(u), "select-kernels schedule plan-memory"; got != want {
		t.Errorf("-O0 recorded %q, want %q", got, want)
	}
}

func recordedPasses(u *Unit) string {
	var names []string
	for _, r := range u.Plan.Passes {
		names = append(names, r.Name)
	}
	return strings.Join(names, " ")
}

func TestPanicBecomesInternalError(t *testing.T) {
	passes := []Pass{
		{Name: "fine", Run: nop(true)},
		{Name: "boom", Run: func(*Unit) (bool, error) { panic("kaboom") }},
		{Name: "never", Run: func(*Unit) (bool, error) { t.Error("ran after a panic"); return false, nil }},
	}
	u := newUnit(&ir.Module{Name: "m"})
	timings, err := runPasses(u, passes, Config{OptLevel: 1})
	if err == nil || err.Error() != "internal error in pass boom: kaboom" {
		t.Fatalf("error %v", err)
	}
	var pe *PassError
	if !errors.As(err, &pe) || pe.Kind != Internal || pe.Pass != "boom" {
		t.Fatalf("error %#v is not an internal PassError", err)
	}
	if !strings.Contains(pe.Detail, "goroutine") || strings.Contains(err.Error(), "goroutine") {
		t.Errorf("the stack belongs in Detail only:\nError: %s\nDetail: %.200s", err, pe.Detail)
	}
	if len(timings.Passes) != 2 || recordedPasses(u) != "fine" {
		t.Errorf("timings %v, records %q", timings.Passes, recordedPasses(u))
	}
}

func TestPassErrorsNameThePass(t *testing.T) {
	passes := []Pass{{Name: "picky", Run: func(*Unit) (bool, error) { return false, errors.New("no good") }}}
	_, err := runPasses(newUnit(&ir.Module{}), passes, Config{OptLevel: 1})
	var pe *PassError
	if err == nil || err.Error() != "pass picky: no good" || !errors.As(err, &pe) || pe.Kind != Failed {
		t.Fatalf("error %v", err)
	}
}

func TestVerifierRunsAfterEveryPass(t *testing.T) {
	var calls []string
	var current string
	oldM, oldP := verifyModule, verifyPlan
	t.Cleanup(func() { verifyModule, verifyPlan = oldM, oldP })
	verifyModule = func(m *ir.Module) error { calls = append(calls, "module:"+current); return oldM(m) }
	verifyPlan = func(p *ir.Plan) error { calls = append(calls, "plan:"+current); return oldP(p) }
	passes := slices.Clone(Pipeline)
	for i := range passes {
		run, name := passes[i].Run, passes[i].Name
		passes[i].Run = func(u *Unit) (bool, error) { current = name; return run(u) }
	}
	if _, err := runPasses(newUnit(mlpModule()), passes, Config{OptLevel: 1, Verify: true}); err != nil {
		t.Fatal(err)
	}
	// The input is verified once, then each pass that ran, at its stage.
	ran := newUnit(mlpModule())
	if _, err := runPasses(ran, slices.Clone(Pipeline), Config{OptLevel: 1}); err != nil {
		t.Fatal(err)
	}
	want := []string{"module:"}
	for _, name := range strings.Fields(recordedPasses(ran)) {
		i := slices.IndexFunc(Pipeline, func(p Pass) bool { return p.Name == name })
		stage := "module:"
		if Pipeline[i].Stage == PlanStage {
			stage = "plan:"
		}
		want = append(want, stage+name)
	}
	if !slices.Contains(want, "module:fuse-elementwise") || !slices.Contains(want, "plan:plan-memory") {
		t.Fatalf("the reference run skipped core passes: %v", want)
	}
	calls, current = calls[:0:0], ""
	if _, err := runPasses(newUnit(mlpModule()), passes, Config{OptLevel: 1, Verify: true}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(calls, want) {
		t.Errorf("verifier calls\n%v\nwant\n%v", calls, want)
	}

	calls = nil
	if _, err := runPasses(newUnit(mlpModule()), passes, Config{OptLevel: 1}); err != nil || len(calls) != 0 {
		t.Errorf("Verify off: err %v, verifier calls %v", err, calls)
	}
}

func TestInvalidIRIsReported(t *testing.T) {
	breakIt := Pass{Name: "break-it", Run: func(u *Unit) (bool, error) {
		u.Module.Funcs[0].Body[0].Op = "no_such_op"
		return true, nil
	}}
	_, err := runPasses(newUnit(mlpModule()), []Pass{breakIt}, Config{OptLevel: 1, Verify: true})
	var pe *PassError
	if err == nil || !strings.HasPrefix(err.Error(), "pass break-it produced invalid IR: ") ||
		!strings.Contains(err.Error(), "no_such_op") || !errors.As(err, &pe) || pe.Kind != InvalidIR {
		t.Fatalf("error %v", err)
	}

	breakPlan := Pass{Name: "break-plan", Stage: PlanStage, Run: func(u *Unit) (bool, error) {
		u.Plan.Buffers[0].Offset = 3
		return true, nil
	}}
	passes := append(slices.Clone(Pipeline), breakPlan)
	_, err = runPasses(newUnit(mlpModule()), passes, Config{OptLevel: 1, Verify: true})
	if err == nil || !strings.HasPrefix(err.Error(), "pass break-plan produced invalid IR: ") {
		t.Fatalf("error %v", err)
	}
}

func TestInvalidInputModule(t *testing.T) {
	m := mlpModule()
	m.Funcs[0].Body[0].Op = "no_such_op"
	_, err := Run(newUnit(m), Config{OptLevel: 1, Verify: true})
	if err == nil || !strings.HasPrefix(err.Error(), "invalid input module: ") {
		t.Fatalf("error %v", err)
	}
}

func TestDumpAfter(t *testing.T) {
	var buf bytes.Buffer
	u := newUnit(mlpModule())
	if _, err := Run(u, Config{OptLevel: 1, Verify: true, DumpAfter: []string{"fuse-elementwise", "plan-memory"}, Dump: &buf}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	graph, plan, ok := strings.Cut(strings.TrimPrefix(out, "// after pass fuse-elementwise\n"), "// after pass plan-memory\n")
	if !ok || !strings.HasPrefix(out, "// after pass fuse-elementwise\n") {
		t.Fatalf("dump:\n%s", out)
	}
	if !strings.Contains(graph, "matmul_bias_act") || strings.Contains(graph, "bias_add") {
		t.Errorf("graph dump is not the fused module:\n%s", graph)
	}
	if plan != ir.PrintPlan(u.Plan) {
		t.Errorf("plan dump differs from the final plan:\n%s", plan)
	}

	buf.Reset()
	if _, err := Run(newUnit(mlpModule()), Config{OptLevel: 0, DumpAfter: []string{"all"}, Dump: &buf}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "// after pass "); n != 3 {
		t.Errorf("-O0 --dump-after=all dumped %d passes, want 3", n)
	}

	_, err := Run(newUnit(mlpModule()), Config{DumpAfter: []string{"nope"}, Dump: &buf})
	if err == nil || !strings.Contains(err.Error(), `cannot dump after pass "nope": no such pass (valid: all, canonicalize,`) {
		t.Errorf("error %v", err)
	}
}

func TestTimingsAndRecords(t *testing.T) {
	u := newUnit(mlpModule())
	timings, err := Run(u, Config{OptLevel: 1, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pt := range timings.Passes {
		names = append(names, pt.Name)
		if pt.Seconds < 0 || pt.Seconds > timings.Total {
			t.Errorf("%s took %v of %v s", pt.Name, pt.Seconds, timings.Total)
		}
	}
	if recordedPasses(u) != strings.Join(names, " ") || len(names) < 8 {
		t.Errorf("timed %v, recorded %q", names, recordedPasses(u))
	}
	rec := map[string]ir.PassRecord{}
	for _, r := range u.Plan.Passes {
		rec[r.Name] = r
	}
	if rec["canonicalize"].Before != 27 || rec["fuse-elementwise"].After != 19 ||
		rec["select-kernels"].Before != 19 || rec["select-kernels"].After != 19 {
		t.Errorf("op counts: %+v", u.Plan.Passes)
	}
}
