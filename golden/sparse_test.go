package golden

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/pipeline"
	"github.com/expc-dev/expc/schema"
)

// Sparse training: the specs in specs/sparse/ (one per recipe) compile to
// plans whose fused masked kernels compute what the unfused plan does, and
// whose masks follow their schedules.

func sparseSpecs(t *testing.T) []string {
	var out []string
	for _, s := range specs(t) {
		if strings.HasPrefix(filepath.ToSlash(s), "specs/sparse/") {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Fatal("no specs under specs/sparse/")
	}
	return out
}

// TestGoldenSparseUnfused pins each sparse spec's plan built without the
// fuse-sparse-masks pass (everything else on), next to its default (fused)
// and -O0 plans: the diff between the two is exactly what the pass does.
func TestGoldenSparseUnfused(t *testing.T) {
	doUpdate := *update || os.Getenv("EXPC_UPDATE") == "1"
	for _, spec := range sparseSpecs(t) {
		name := goldenName(spec, "cpu", ".nofuse-sparse")
		t.Run(filepath.Base(name), func(t *testing.T) {
			res, diags := pipeline.Build(spec, pipeline.Options{OptLevel: 1, Disabled: []string{"fuse-sparse-masks"}, MemoryLimit: -1})
			if diags.HasErrors() {
				t.Fatalf("build %s: %v", spec, diags)
			}
			got := ir.PrintPlan(res.Plan)
			if doUpdate {
				if err := os.WriteFile(name, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(name)
			if err != nil {
				t.Fatalf("missing golden file %s (run `go test ./golden -update` and review the result): %v", name, err)
			}
			if string(want) != got {
				t.Errorf("plan for %s differs from %s; if intended, run `go test ./golden -update` and review the diff.\n%s",
					spec, name, firstDiff(string(want), got))
			}
		})
	}
}

// small shrinks a spec for a test that runs it: a smaller model and batch,
// SGD with lr 1 and nothing else (so one step's parameter change is the
// gradient), and a run of steps steps with the schedule's steps scaled down.
func small(t *testing.T, spec string, steps int) *schema.Experiment {
	t.Helper()
	exp, diags := schema.Load(spec)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	exp.Model.Hidden = []int{96, 64}
	exp.Dataset.Batch, exp.Dataset.EvalBatch = 48, 48
	exp.Optimizer = schema.Optimizer{Kind: "sgd", LR: 1, Schedule: schema.Schedule{Kind: "constant"}}
	exp.Train.Steps, exp.Train.Epochs = steps, 0
	s := exp.Method.Sparsity
	if s.Pattern == "block" {
		s.Block = []int{16, 32}
	}
	sc := &s.Schedule
	if sc.Kind == "gradual" {
		sc.Start, sc.End, sc.Every = 3, steps*2/3, 4
	}
	if sc.Kind == "reselect" {
		sc.Every = 5
	}
	if sc.DenseAt >= 1 {
		sc.DenseAt = float64(steps / 2)
	}
	return exp
}

// harness is a built plan prepared on the CPU backend.
type harness struct {
	t    *testing.T
	plan *ir.Plan
	exe  *cpu.Executable
}

func newHarness(t *testing.T, exp *schema.Experiment, disabled ...string) *harness {
	t.Helper()
	res, diags := pipeline.BuildExperiment(exp, "specs/sparse", pipeline.Options{OptLevel: 1, Disabled: disabled, MemoryLimit: -1})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	exe, err := cpu.New(2).Prepare(res.Plan)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, plan: res.Plan, exe: exe.(*cpu.Executable)}
}

func (h *harness) buf(name string) int {
	for _, b := range h.plan.Buffers {
		if b.Name == name {
			return b.ID
		}
	}
	h.t.Fatalf("plan has no buffer %s", name)
	return -1
}

func (h *harness) input(prog, name string) int {
	id := h.plan.Program(prog).Binding(name)
	if id < 0 {
		h.t.Fatalf("program %s has no binding %s", prog, name)
	}
	return id
}

func (h *harness) run(prog string) {
	if err := h.exe.Run(prog); err != nil {
		h.t.Fatal(err)
	}
}

// masks runs the mask program as the runner does before step s.
func (h *harness) masks(s int) {
	h.exe.I32(h.input("mask", "step"))[0] = int32(s)
	h.run("mask")
}

// feed puts a batch of fresh random inputs and labels into a program.
func (h *harness) feed(prog string, r *rand.Rand) {
	for i := range h.exe.F32(h.input(prog, "x")) {
		h.exe.F32(h.input(prog, "x"))[i] = float32(r.NormFloat64())
	}
	y := h.exe.I32(h.input(prog, "y"))
	for i := range y {
		y[i] = int32(r.IntN(h.plan.Data.Classes))
	}
}

// TestSparseFusedMatchesUnfused: for every spec in specs/sparse/, the plan
// with fuse-sparse-masks and the plan without it give the same loss, the
// same gradients (one SGD step at lr 1: the parameter change) and the same
// evaluation outputs on random inputs, with each mask the schedule gives
// (the first one, and the one after the last scheduled update).
//
// Tolerance: loss within 1e-5 relative; each gradient tensor within
// 2e-4·max|g| + 1e-6 elementwise (float32 sums in different orders, read
// back through w - lr·g); gradients of pruned weights exactly zero.
func TestSparseFusedMatchesUnfused(t *testing.T) {
	for _, spec := range sparseSpecs(t) {
		t.Run(filepath.Base(spec), func(t *testing.T) {
			exp := small(t, spec, 30)
			fused := newHarness(t, exp)
			plain := newHarness(t, exp, "fuse-sparse-masks")
			if !slices.ContainsFunc(fused.plan.Program("train").Kernels, func(k ir.Kernel) bool { return k.Op == "masked_matmul" }) {
				t.Fatal("the fused plan has no masked_matmul")
			}
			steps := fused.plan.Schedule.Masks.Steps
			for _, s := range []int{0, steps[len(steps)-1]} {
				r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
				seed := [2]uint64{r.Uint64(), r.Uint64()}
				fused.masks(s)
				plain.masks(s)
				// Same state in both (the mask programs agree, but the
				// weights have diverged by a step at the second round).
				for _, b := range fused.plan.Buffers {
					if b.Kind.Persistent() {
						id := plain.buf(b.Name)
						if b.Type.DType == ir.I32 {
							copy(plain.exe.I32(id), fused.exe.I32(b.ID))
						} else {
							copy(plain.exe.F32(id), fused.exe.F32(b.ID))
						}
					}
				}
				before := map[string][]float32{}
				for _, h := range []*harness{fused, plain} {
					h.feed("train", rand.New(rand.NewPCG(seed[0], seed[1])))
					h.feed("eval", rand.New(rand.NewPCG(seed[1], seed[0])))
					h.exe.I32(h.input("train", "step"))[0] = int32(s)
					if h == fused {
						for _, b := range h.plan.Buffers {
							if b.Kind == ir.BufParam {
								before[b.Name] = slices.Clone(h.exe.F32(b.ID))
							}
						}
					}
					h.run("train")
					h.run("eval")
				}
				lf, lp := fused.exe.F32(fused.input("train", "loss"))[0], plain.exe.F32(plain.input("train", "loss"))[0]
				if math.Abs(float64(lf-lp)) > 1e-5*math.Abs(float64(lp)) {
					t.Fatalf("mask step %d: loss fused %g, unfused %g", s, lf, lp)
				}
				for _, out := range []string{"loss", "correct"} {
					ef, ep := fused.exe.F32(fused.input("eval", out))[0], plain.exe.F32(plain.input("eval", out))[0]
					if math.Abs(float64(ef-ep)) > 1e-5*math.Abs(float64(ep)) {
						t.Fatalf("mask step %d: eval %s fused %g, unfused %g", s, out, ef, ep)
					}
				}
				masks := map[string]string{}
				for _, l := range fused.plan.Schedule.Masks.Layers {
					masks[l.Weight] = l.Mask
				}
				for name, w0 := range before {
					gf, gp := fused.exe.F32(fused.buf(name)), plain.exe.F32(plain.buf(name))
					var scale float64
					for i := range w0 {
						scale = math.Max(scale, math.Abs(float64(w0[i]-gp[i])))
					}
					var m []float32
					if mk, ok := masks[name]; ok {
						m = fused.exe.F32(fused.buf(mk))
					}
					for i := range w0 {
						df, dp := w0[i]-gf[i], w0[i]-gp[i]
						if math.Abs(float64(df-dp)) > 2e-4*scale+1e-6 {
							t.Fatalf("mask step %d: gradient of %s[%d]: fused %g, unfused %g (max |g| %g)", s, name, i, df, dp, scale)
						}
						if m != nil && m[i] == 0 && (df != 0 || dp != 0) {
							t.Fatalf("mask step %d: pruned weight %s[%d] got gradient fused %g, unfused %g", s, name, i, df, dp)
						}
					}
				}
			}
		})
	}
}

// density is the fraction of non-zeros of a mask.
func density(m []float32) float64 {
	n := 0
	for _, v := range m {
		if v != 0 {
			n++
		}
	}
	return float64(n) / float64(len(m))
}

// TestSparseSchedules trains every spec in specs/sparse/ (shrunk) the way the
// runner does, running the mask program before the steps the plan lists, and
// checks after every step that each mask has the density its schedule gives
// at that step (exactly: ir.MaskKeep of the units over the total), that an
// N:M mask has exactly N non-zeros in every group of M (after every
// re-selection), that block masks are whole blocks, and that weights revived
// by the switch to dense start at zero.
func TestSparseSchedules(t *testing.T) {
	for _, spec := range sparseSpecs(t) {
		t.Run(filepath.Base(spec), func(t *testing.T) {
			exp := small(t, spec, 30)
			h := newHarness(t, exp)
			ms := h.plan.Schedule.Masks
			rules := map[string]ir.Attrs{}
			for _, k := range h.plan.Program("mask").Kernels {
				rules[h.plan.Buffers[k.Ins[1]].Name] = k.Attrs
			}
			r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			last := -1
			for s := range h.plan.Schedule.Steps {
				var pruned map[string][]bool
				if ms.Has(s) {
					pruned = map[string][]bool{}
					for _, l := range ms.Layers {
						m := h.exe.F32(h.buf(l.Mask))
						p := make([]bool, len(m))
						for i, v := range m {
							p[i] = v == 0
						}
						pruned[l.Layer] = p
					}
					h.masks(s)
					last = s
				}
				h.feed("train", r)
				h.exe.I32(h.input("train", "step"))[0] = int32(s)
				if pruned != nil && s > 0 {
					checkRevived(t, h, rules, pruned, s)
				}
				h.run("train")
				for _, l := range ms.Layers {
					checkMask(t, h, l, rules[l.Mask], s, last)
				}
			}
		})
	}
}

// checkRevived: right after the mask program ran at the switch to dense,
// every weight that was pruned is zero.
func checkRevived(t *testing.T, h *harness, rules map[string]ir.Attrs, pruned map[string][]bool, s int) {
	for _, l := range h.plan.Schedule.Masks.Layers {
		if d := rules[l.Mask].Int("dense_at", 0); d == 0 || s != d {
			continue
		}
		w := h.exe.F32(h.buf(l.Weight))
		for i, p := range pruned[l.Layer] {
			if p && w[i] != 0 {
				t.Fatalf("step %d: %s revived weight %d is %g, want 0", s, l.Layer, i, w[i])
			}
		}
	}
}

func checkMask(t *testing.T, h *harness, l ir.MaskLayer, rule ir.Attrs, s, last int) {
	t.Helper()
	m := h.exe.F32(h.buf(l.Mask))
	shape := h.plan.Buffers[h.buf(l.Mask)].Type.Shape
	rows, cols := shape[0], shape[1]
	want := ir.MaskDensityAt(rule, last)
	where := fmt.Sprintf("step %d (last mask update %d), %s", s, last, l.Layer)
	switch pat := rule.Str("pattern", ""); {
	case want == 1:
		if d := density(m); d != 1 {
			t.Fatalf("%s: density %g, want 1", where, d)
		}
	case pat == "nm":
		n, gm := rule.Int("n", 0), rule.Int("m", 0)
		for j := range cols {
			for g := 0; g < rows; g += gm {
				k := 0
				for i := g; i < g+gm; i++ {
					if m[i*cols+j] != 0 {
						k++
					}
				}
				if k != n {
					t.Fatalf("%s: group of rows %d..%d, column %d has %d non-zeros, want %d", where, g, g+gm-1, j, k, n)
				}
			}
		}
	case pat == "block":
		b := rule.Ints("block")
		nb := (rows / b[0]) * (cols / b[1])
		kept := 0
		for bi := 0; bi < rows; bi += b[0] {
			for bj := 0; bj < cols; bj += b[1] {
				v := m[bi*cols+bj]
				for i := bi; i < bi+b[0]; i++ {
					for j := bj; j < bj+b[1]; j++ {
						if m[i*cols+j] != v {
							t.Fatalf("%s: block at %d,%d is not whole", where, bi, bj)
						}
					}
				}
				if v != 0 {
					kept++
				}
			}
		}
		if kept != ir.MaskKeep(nb, want) {
			t.Fatalf("%s: %d of %d blocks kept, the schedule gives density %g: %d", where, kept, nb, want, ir.MaskKeep(nb, want))
		}
	default:
		if got, w := density(m), float64(ir.MaskKeep(len(m), want))/float64(len(m)); got != w {
			t.Fatalf("%s: density %g, the schedule gives %g (%d of %d)", where, got, want, ir.MaskKeep(len(m), want), len(m))
		}
	}
}

// TestSparseStepDoesNotAllocate: once the masks are chosen, a training
// step of a fused sparse plan allocates nothing (kernels keep their
// compressed masks and scratch between steps).
func TestSparseStepDoesNotAllocate(t *testing.T) {
	for _, spec := range sparseSpecs(t) {
		h := newHarness(t, small(t, spec, 30))
		h.masks(0)
		h.feed("train", rand.New(rand.NewPCG(1, 2)))
		h.run("train") // first run: scratch grows to its size
		if n := testing.AllocsPerRun(3, func() { h.run("train") }); n != 0 {
			t.Errorf("%s: %v allocations per training step", spec, n)
		}
	}
}
