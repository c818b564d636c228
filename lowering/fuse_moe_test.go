package lowering_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends"
	_ "github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/compiler"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/ir/interp"
	"github.com/expc-dev/expc/lowering"
	"github.com/expc-dev/expc/schema"
)

// The fused and unfused plans of an MoE layer compute the same function:
// the same routing (token lists, drops, counts) exactly, and the same
// output, loss and gradients. In float64 (the interpreter, on the lowered
// graphs) to 1e-9; on the CPU backend in float32 to 1e-4 of each result's
// largest magnitude (the unfused GEMMs run over capacity-padded rows, so
// their k-blocking and summation order differ from the fused ones).

type moeCase struct {
	name string
	spec schema.MoE
	dx   bool
}

func moeCases() []moeCase {
	base := schema.MoE{Experts: 4, TopK: 2, Gate: "topk_softmax", Temperature: 1, Hidden: 24, Activation: "relu"}
	with := func(f func(*schema.MoE)) schema.MoE {
		s := base
		f(&s)
		return s
	}
	return []moeCase{
		{"top2/dropless/dx", base, true},
		{"top2/aux", with(func(s *schema.MoE) { s.LoadBalance, s.ZLoss = 0.05, 0.01 }), true},
		{"softmax_topk/capacity/gelu", with(func(s *schema.MoE) {
			s.Gate, s.CapacityFactor, s.Activation, s.LoadBalance, s.Temperature = "softmax_topk", 0.6, "gelu", 0.1, 0.7
		}), true},
		{"renormalize/sigmoid/k3/nodx", with(func(s *schema.MoE) {
			s.Experts, s.TopK, s.Gate, s.Renormalize, s.RouterActivation, s.ZLoss = 5, 3, "softmax_topk", true, "sigmoid", 0.01
		}), false},
		{"dense/tanh", with(func(s *schema.MoE) {
			s.Gate, s.TopK, s.Activation, s.Temperature = "dense", 4, "tanh", 2
		}), true},
		{"top1/capacity", with(func(s *schema.MoE) { s.TopK, s.CapacityFactor = 1, 0.9 }), true},
		{"one expert", with(func(s *schema.MoE) { s.Experts, s.TopK, s.LoadBalance = 1, 1, 0.1 }), true},
	}
}

const moeT, moeD = 300, 16

func moeModule(t *testing.T, c moeCase) *ir.Module {
	t.Helper()
	cfg := compiler.MoEConfig{Name: "moe", Width: moeD, Tokens: moeT, Spec: c.spec,
		Capacity: compiler.MoECapacity(moeT, c.spec.Experts, c.spec.TopK, c.spec.CapacityFactor)}
	m, err := compiler.MoELayerModule(cfg, c.dx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func lowerMoE(t *testing.T, c moeCase, opt int) *lowering.Unit {
	t.Helper()
	m := moeModule(t, c)
	u := &lowering.Unit{Module: m, Plan: &ir.Plan{Format: ir.PlanFormat, Name: m.Name, Target: "cpu"}}
	if _, err := lowering.Run(u, lowering.Config{OptLevel: opt, Verify: true, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	return u
}

func ops(p *ir.Plan) []string {
	var out []string
	for _, k := range p.Program("train").Kernels {
		out = append(out, k.Op)
	}
	return out
}

// moeArgs draws the layer's parameters and inputs. The router weights are
// spread out so that no two scores of a token are within float32 noise.
func moeArgs(r *rand.Rand, f *ir.Func) map[string]*interp.Tensor {
	args := map[string]*interp.Tensor{}
	for _, p := range f.Params {
		if p.Type.DType == ir.I32 { // labels
			t := &interp.Tensor{Shape: p.Type.Shape, I: make([]int32, p.Type.Shape.Elems())}
			for i := range t.I {
				t.I[i] = int32(r.IntN(moeD))
			}
			args[p.Name] = t
			continue
		}
		t := &interp.Tensor{Shape: p.Type.Shape, F: make([]float64, p.Type.Shape.Elems())}
		sd := 0.3
		if strings.Contains(p.Name, "router") {
			sd = 1
		}
		for i := range t.F {
			t.F[i] = float64(float32(sd * r.NormFloat64()))
		}
		args[p.Name] = t
	}
	return args
}

func TestFuseMoEGatingMatchesUnfused(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("random seed %d", seed)
	for _, c := range moeCases() {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			unf, fus := lowerMoE(t, c, 0), lowerMoE(t, c, 1)
			fo := ops(fus.Plan)
			for _, op := range []string{"moe_route", "moe_ffn", "moe_combine", "moe_combine_grad", "moe_ffn_grad", "moe_route_grad"} {
				if !slices.Contains(fo, op) {
					t.Fatalf("fused plan has no %s: %v", op, fo)
				}
			}
			for _, op := range fo {
				if op == "moe_dispatch" || op == "moe_gather" || op == "moe_gate" {
					t.Fatalf("fused plan still has %s: %v", op, fo)
				}
			}
			args := moeArgs(r, unf.Module.Func("train"))
			checkInterp(t, unf.Module.Func("train"), fus.Module.Func("train"), args)
			checkCPU(t, unf.Plan, fus.Plan, args, c)
		})
	}
}

// checkInterp runs both lowered graphs in float64.
func checkInterp(t *testing.T, a, b *ir.Func, args map[string]*interp.Tensor) {
	t.Helper()
	ea, err := interp.Run(a, args)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := interp.Run(b, args)
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]*ir.Value{}
	for _, o := range b.Outputs {
		outs[o.Name] = o.Value
	}
	for _, o := range a.Outputs {
		ob, ok := outs[o.Name]
		if !ok {
			continue
		}
		want, got := ea[o.Value].F, eb[ob].F
		scale := 0.0
		for _, v := range want {
			scale = math.Max(scale, math.Abs(v))
		}
		for i := range want {
			if d := math.Abs(got[i] - want[i]); d > 1e-9*(1+scale) {
				t.Fatalf("float64 %s[%d]: fused %.12g, unfused %.12g", o.Name, i, got[i], want[i])
			}
		}
	}
}

// checkCPU runs both plans on the CPU backend from the same parameters.
func checkCPU(t *testing.T, unf, fus *ir.Plan, args map[string]*interp.Tensor, c moeCase) {
	t.Helper()
	be, err := backends.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	run := func(p *ir.Plan) (backends.Executable, *ir.Program) {
		x, err := be.Prepare(p)
		if err != nil {
			t.Fatal(err)
		}
		pr := p.Program("train")
		for _, buf := range p.Buffers {
			name := strings.TrimPrefix(buf.Name, "train.")
			a, ok := args[name]
			if !ok || (buf.Kind != ir.BufParam && buf.Kind != ir.BufInput) {
				continue
			}
			if a.I != nil {
				copy(x.I32(buf.ID), a.I)
				continue
			}
			dst := x.F32(buf.ID)
			for i, v := range a.F {
				dst[i] = float32(v)
			}
		}
		if err := x.Run("train"); err != nil {
			t.Fatal(err)
		}
		return x, pr
	}
	// Give every buffer its own bytes, so that the routing buffers can be
	// read after the run (the memory plan reuses them).
	for _, p := range []*ir.Plan{unf, fus} {
		var off int64
		for i := range p.Buffers {
			p.Buffers[i].Offset = off
			off += (p.Buffers[i].Bytes + 63) / 64 * 64
		}
		p.Memory.ArenaBytes = off
	}
	xu, pu := run(unf)
	defer xu.Close()
	xf, pf := run(fus)
	defer xf.Close()
	worst := 0.0
	for _, o := range pu.Outputs {
		idf := pf.Binding(o.Name)
		if idf < 0 {
			continue
		}
		want, got := xu.F32(o.Buffer), xf.F32(idf)
		if o.Name == "load" || o.Name == "dropped" {
			if !slices.Equal(want, got) {
				t.Fatalf("%s: fused %v, unfused %v", o.Name, got, want)
			}
			continue
		}
		scale := 0.0
		for _, v := range want {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for i := range want {
			d := math.Abs(float64(got[i] - want[i]))
			if !(d <= 1e-4*scale+1e-5*math.Abs(float64(want[i]))) {
				t.Fatalf("float32 %s[%d]: fused %.8g, unfused %.8g (scale %.3g)", o.Name, i, got[i], want[i], scale)
			}
			worst = max(worst, d/max(scale, 1e-30))
		}
	}
	t.Logf("largest float32 difference: %.2g of the result's scale", worst)
	// Routing: expert e's dispatch list in the unfused plan is its block of
	// the fused permutation, padded with −1.
	buf := func(p *ir.Plan, name string) int {
		for _, b := range p.Buffers {
			if b.Name == name {
				return b.ID
			}
		}
		t.Fatalf("plan %s has no buffer %s", p.Name, name)
		return -1
	}
	perm, off := xf.I32(buf(fus, "train.moe.perm")), xf.I32(buf(fus, "train.moe.offsets"))
	for e := 0; e < c.spec.Experts; e++ {
		idx := xu.I32(buf(unf, fmt.Sprintf("train.moe.e%d.idx", e)))
		want := slices.Clone(perm[off[e]:off[e+1]])
		for len(want) < len(idx) {
			want = append(want, -1)
		}
		if !slices.Equal(idx, want) {
			t.Fatalf("expert %d: unfused tokens %v, fused %v", e, idx, want)
		}
	}
}

// TestMoEStepDoesNotAllocate: a training step of either plan allocates
// nothing (everything is in the arena or prepared with the kernels).
func TestMoEStepDoesNotAllocate(t *testing.T) {
	be, err := backends.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	c := moeCases()[2] // capacity, gelu, aux: every code path of the kernels
	for _, opt := range []int{0, 1} {
		u := lowerMoE(t, c, opt)
		x, err := be.Prepare(u.Plan)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		for _, name := range []string{"x", "r"} {
			v := x.F32(u.Plan.Program("train").Binding(name))
			for i := range v {
				v[i] = float32(r.NormFloat64())
			}
		}
		if err := x.Run("train"); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(5, func() {
			if err := x.Run("train"); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("-O%d: %v allocations per step", opt, n)
		}
		x.Close()
	}
}

// TestFuseMoELeavesEscapingLayers: when a value inside the layer is read
// elsewhere (here an expert's hidden activation is a function output), the
// layer stays unfused and the pass log says why; the plan still runs.
func TestFuseMoELeavesEscapingLayers(t *testing.T) {
	c := moeCases()[0]
	m := moeModule(t, c)
	f := m.Func("train")
	for _, in := range f.Body {
		if in.Op == "relu" && in.Result().Name == "moe.e1.h" {
			f.Outputs = append(f.Outputs, ir.Output{Name: "leak", Value: in.Result()})
		}
	}
	u := &lowering.Unit{Module: m, Plan: &ir.Plan{Format: ir.PlanFormat, Name: m.Name, Target: "cpu"}}
	if _, err := lowering.Run(u, lowering.Config{OptLevel: 1, Verify: true}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ops(u.Plan), "moe_route") {
		t.Fatal("a layer whose activation escapes was fused")
	}
	for _, r := range u.Plan.Passes {
		if r.Name == "fuse-moe-gating" && !strings.Contains(r.Note, "left unfused") {
			t.Errorf("pass note %q does not say why", r.Note)
		}
	}
}
