package compiler

import (
	"slices"
	"strings"
	"testing"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

func compileSpec(t *testing.T, src string, data DataShape) (*ir.Module, []string) {
	t.Helper()
	exp, l := schema.LoadBytes("s.cue", []byte(src))
	if l != nil {
		t.Fatal(l)
	}
	mod, _, diags := Compile(Input{Exp: exp, Target: "cpu", Data: data})
	var got []string
	for _, d := range diags {
		got = append(got, d.Code+" "+d.Path)
	}
	return mod, got
}

// TestMoESpecErrors: cross-field mistakes are positioned diagnostics.
func TestMoESpecErrors(t *testing.T) {
	blobs := DataShape{Features: 4, Classes: 3, TrainN: 800, EvalN: 200}
	tokens := DataShape{Features: 17, Classes: 20, TrainN: 800, EvalN: 200}
	mixture := DataShape{Features: 3, Classes: 2, TrainN: 800, EvalN: 200}
	for _, tc := range []struct {
		name, src string
		data      DataShape
		want      string
	}{
		{"transformer on blobs", `name: "m", dataset: name: "blobs", model: kind: "transformer"`, blobs, "E-COMPILE-DATA dataset.name"},
		{"mlp on tokens", `name: "m", dataset: name: "tokens", model: {kind: "mlp", hidden: [8]}`, tokens, "E-COMPILE-MODEL model.kind"},
		{"gaussian without its loss", `name: "m", dataset: name: "mixture_regression", model: kind: "gaussian_moe"`, mixture, "E-COMPILE-LOSS loss.kind"},
		{"mixture loss on an mlp", `name: "m", dataset: name: "blobs", model: {kind: "mlp", hidden: [8]}, loss: kind: "mixture_nll"`, blobs, "E-COMPILE-LOSS loss.kind"},
		{"layer past the hidden layers", `name: "m", dataset: name: "blobs", model: {kind: "mlp", hidden: [8], moe: layers: [1, 2]}`, blobs, "E-COMPILE-MOE model.moe.layers[1]"},
		{"heads", `name: "m", dataset: name: "tokens", model: {kind: "transformer", d_model: 30, heads: 4}`, tokens, "E-COMPILE-SIZE model.heads"},
		{"capacity on a dense head", `name: "m", dataset: name: "mixture_regression", model: {kind: "gaussian_moe", moe: capacity_factor: 1.5}, loss: kind: "mixture_nll"`, mixture, "E-COMPILE-MOE model.moe.capacity_factor"},
		{"schedule past the run", `name: "m", dataset: {name: "blobs", batch: 100}, train: steps: 10, model: {kind: "mlp", hidden: [8], moe: temperature_schedule: {end: 0.5, steps: 20}}`, blobs, "E-COMPILE-SCHEDULE model.moe.temperature_schedule.steps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := compileSpec(t, tc.src, tc.data)
			if !slices.Contains(got, tc.want) {
				t.Errorf("diagnostics %v, want %q", got, tc.want)
			}
		})
	}
}

// TestMoEModelsCompile: each model builds a train and an eval function;
// the train function reports the experts' load and a scheduled temperature
// is carried into eval through its state slot.
func TestMoEModelsCompile(t *testing.T) {
	mod, diags := compileSpec(t, `name: "m", dataset: {name: "tokens", batch: 8}
model: {kind: "transformer", d_model: 16, heads: 2, moe: {experts: 4, layers: [1, 2], temperature_schedule: {end: 0.5}}}`,
		DataShape{Features: 9, Classes: 16, TrainN: 64, EvalN: 16})
	if diags != nil {
		t.Fatal(diags)
	}
	train, eval := mod.Func("train"), mod.Func("eval")
	var outs []string
	for _, o := range train.Outputs {
		outs = append(outs, o.Name)
	}
	for _, want := range []string{"loss", "lr", "moe.tau", "metrics.moe1.load", "metrics.moe2.dropped"} {
		if !slices.Contains(outs, want) {
			t.Errorf("train outputs %v lack %s", outs, want)
		}
	}
	tau := false
	for _, p := range eval.Params {
		tau = tau || (p.Name == "moe.tau" && p.Role == ir.RoleState)
	}
	if !tau {
		t.Error("eval does not read the temperature's state slot")
	}
	if err := ir.Verify(mod); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{
		`name: "m", dataset: name: "mixture_regression", model: kind: "gaussian_moe", loss: kind: "mixture_nll"`,
		`name: "m", dataset: name: "blobs", model: {kind: "mlp", hidden: [8, 8], moe: {gate: "dense", layers: [2], router_activation: "sigmoid"}}`,
	} {
		mod, diags := compileSpec(t, src, DataShape{Features: 3, Classes: 2, TrainN: 800, EvalN: 200})
		if diags != nil {
			t.Fatalf("%s: %v", src, diags)
		}
		if err := ir.Verify(mod); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ir.Print(mod), "moe_gate") {
			t.Errorf("%s: no gate in\n%s", src, ir.Print(mod))
		}
	}
}
