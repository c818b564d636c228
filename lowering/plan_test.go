package lowering

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/ir/interp"
)

func lower(t *testing.T, m *ir.Module, cfg Config) *Unit {
	t.Helper()
	cfg.Verify = true
	u := newUnit(m)
	if _, err := Run(u, cfg); err != nil {
		t.Fatal(err)
	}
	return u
}

// execPlan runs one program of a plan kernel by kernel through the graph
// interpreter, on an arena of float64/int32 slots indexed by byte offset/4,
// so that a schedule or memory plan that clobbers a live value changes
// the results. Persistent buffers and inputs are set from args by name
// (buffer name, or binding name for inputs). It returns the program's
// output bindings and every persistent buffer after the run, by name.
func execPlan(t *testing.T, p *ir.Plan, program string, args map[string]*interp.Tensor) map[string]*interp.Tensor {
	t.Helper()
	pr := p.Program(program)
	f64 := make([]float64, p.Memory.ArenaBytes/4)
	i32 := make([]int32, p.Memory.ArenaBytes/4)
	view := func(id int) *interp.Tensor {
		b := p.Buffers[id]
		lo, hi := b.Offset/4, b.Offset/4+b.Type.Shape.Elems()
		if b.Type.DType == ir.I32 {
			return &interp.Tensor{Shape: b.Type.Shape, I: i32[lo:hi]}
		}
		return &interp.Tensor{Shape: b.Type.Shape, F: f64[lo:hi]}
	}
	set := func(id int, v *interp.Tensor) {
		if v == nil { // state of another program
			return
		}
		dst := view(id)
		copy(dst.F, v.F)
		copy(dst.I, v.I)
	}
	for _, b := range p.Buffers {
		if b.Kind.Persistent() {
			set(b.ID, args[b.Name])
		}
	}
	for _, in := range pr.Inputs {
		set(in.Buffer, args[in.Name])
	}
	for _, k := range pr.Kernels {
		f := &ir.Func{Name: k.Name}
		in := &ir.Instr{Op: k.Op, Attrs: k.Attrs}
		kargs := map[string]*interp.Tensor{}
		for i, id := range k.Ins {
			v := &ir.Value{Name: "in" + string(rune('a'+i)), Type: p.Buffers[id].Type, Role: ir.RoleInput}
			f.Params = append(f.Params, v)
			in.Args = append(in.Args, v)
			kargs[v.Name] = view(id)
		}
		for _, id := range k.Outs {
			in.Results = append(in.Results, &ir.Value{Name: "out", Type: p.Buffers[id].Type, Def: in})
		}
		f.Body = []*ir.Instr{in}
		env, err := interp.Run(f, kargs)
		if err != nil {
			t.Fatalf("%s %s: %v", program, k.Name, err)
		}
		for i, id := range k.Outs {
			set(id, env[in.Results[i]])
		}
	}
	out := map[string]*interp.Tensor{}
	for _, b := range pr.Outputs {
		out[b.Name] = view(b.Buffer)
	}
	for _, b := range p.Buffers {
		if b.Kind.Persistent() {
			out[b.Name] = view(b.ID)
		}
	}
	return out
}

// graphResults is what execPlan returns, from the graph: outputs by name,
// and persistent parameters after their in-place updates.
func graphResults(t *testing.T, f *ir.Func, args map[string]*interp.Tensor) map[string]*interp.Tensor {
	t.Helper()
	env, err := interp.Run(f, args)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*interp.Tensor{}
	for _, p := range f.Params {
		if p.Role == ir.RoleParam || p.Role == ir.RoleState {
			out[p.Name] = args[p.Name]
		}
	}
	for _, o := range f.Outputs {
		v := env[o.Value]
		if v == nil {
			v = args[o.Value.Name]
		}
		if o.Updates != nil {
			out[o.Updates.Name] = v
		} else {
			out[o.Name] = v
		}
	}
	return out
}

// Every plan computes what its graph computes: fused or not, scheduled,
// with temporaries sharing bytes and parameters updated in place.
func TestPlansComputeTheGraph(t *testing.T) {
	for _, cfg := range []Config{{OptLevel: 0}, {OptLevel: 1}, {OptLevel: 1, Disabled: []string{"fuse-elementwise"}}} {
		u := lower(t, mlpModule(), cfg)
		ref := mlpModule()
		for _, f := range ref.Funcs {
			for seed := uint64(1); seed <= 3; seed++ {
				args := randomArgs(f, seed, 3)
				want := graphResults(t, f, args)
				got := execPlan(t, u.Plan, f.Name, randomArgs(f, seed, 3))
				for name := range got {
					if _, ok := want[name]; !ok {
						delete(got, name) // eval leaves the train state alone; it is not in its graph
					}
				}
				sameOutputs(t, f.Name, want, got, 1e-12)
			}
		}
	}
}

func TestSelectKernels(t *testing.T) {
	u := lower(t, mlpModule(), Config{OptLevel: 1, Seed: 7})
	p := u.Plan
	names := map[string]ir.Buffer{}
	for _, b := range p.Buffers {
		names[b.Name] = b
	}
	for name, kind := range map[string]ir.BufferKind{"w1": ir.BufParam, "v_w1": ir.BufState, "train.x": ir.BufInput,
		"eval.x": ir.BufInput, "train.dlogits": ir.BufTemp, "eval.logits": ir.BufTemp} {
		if names[name].Kind != kind {
			t.Errorf("buffer %s: kind %q, want %q", name, names[name].Kind, kind)
		}
	}
	if len(p.Buffers) != len(names) {
		t.Errorf("buffer names are not unique")
	}
	// Parameters are shared between train and eval; sgd writes them in place.
	train, eval := p.Program("train"), p.Program("eval")
	w1 := names["w1"].ID
	if k := eval.Kernels[0]; k.Op != "matmul_bias_act" || k.Ins[1] != w1 {
		t.Errorf("eval k0 = %s %v, want it to read w1 = b%d", k.Op, k.Ins, w1)
	}
	var sgd []ir.Kernel
	for _, k := range train.Kernels {
		if k.Op == "sgd" {
			sgd = append(sgd, k)
			if k.Outs[0] != k.Ins[0] || k.Outs[1] != k.Ins[2] || !p.Buffers[k.Outs[0]].Kind.Persistent() {
				t.Errorf("sgd %v -> %v does not update in place", k.Ins, k.Outs)
			}
		}
	}
	if len(sgd) != 4 {
		t.Errorf("%d sgd kernels, want 4", len(sgd))
	}
	if got := bindings(train.Inputs) + " / " + bindings(train.Outputs); got != "x y step / loss" {
		t.Errorf("train bindings %s", got)
	}
	if got := bindings(eval.Inputs) + " / " + bindings(eval.Outputs); got != "x y / loss correct" {
		t.Errorf("eval bindings %s", got)
	}
	// Costs.
	for _, k := range eval.Kernels {
		if k.Op == "matmul_bias_act" && k.Ins[1] == w1 {
			// 2·8·6·5 for the GEMM, (1 bias + 1 relu)·8·5 for the epilogue.
			if k.FLOPs != 480+80 || k.Bytes != (48+30+5+40)*4 || !slices.Equal(k.FusedFrom, []string{"matmul", "bias_add", "relu"}) {
				t.Errorf("eval layer 1: %d FLOPs, %d bytes, fused from %v", k.FLOPs, k.Bytes, k.FusedFrom)
			}
		}
	}
	// Initializers: one per param, none for state.
	if len(p.Inits) != 4 {
		t.Fatalf("%d inits, want 4", len(p.Inits))
	}
	seeds := map[uint64]bool{}
	for _, in := range p.Inits {
		b := p.Buffers[in.Buffer]
		seeds[in.Seed] = true
		var want ir.Init
		switch b.Name {
		case "w1":
			want = ir.Init{Kind: "he_normal", FanIn: 6, FanOut: 5, Scale: math.Sqrt(2.0 / 6)}
		case "w2":
			want = ir.Init{Kind: "xavier_uniform", FanIn: 5, FanOut: 3, Scale: math.Sqrt(6.0 / 8)}
		case "b1":
			want = ir.Init{Kind: "zeros", FanIn: 5, FanOut: 5}
		case "b2":
			want = ir.Init{Kind: "zeros", FanIn: 3, FanOut: 3}
		}
		want.Buffer, want.Seed = in.Buffer, initSeed(7, b.Name)
		if in != want {
			t.Errorf("init of %s: %+v, want %+v", b.Name, in, want)
		}
	}
	if len(seeds) != 4 {
		t.Errorf("initializer seeds are not distinct: %v", p.Inits)
	}
	if initSeed(7, "w1") == initSeed(8, "w1") {
		t.Error("the initializer seed ignores the run's seed")
	}
}

func bindings(bs []ir.Binding) string {
	var names []string
	for _, b := range bs {
		names = append(names, b.Name)
	}
	return strings.Join(names, " ")
}

func selectErr(t *testing.T, src string) error {
	t.Helper()
	u := newUnit(parseModule(t, src))
	_, err := Run(u, Config{OptLevel: 1, Verify: true})
	return err
}

func TestSelectKernelsErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{{
		name: "param types disagree",
		src: `module m
func @a(%w: tensor<f32,[3]> param init="zeros") {
  %n = neg %w
  return %n as "n"
}
func @b(%w: tensor<f32,[4]> param init="zeros") {
  %n = neg %w
  return %n as "n"
}`,
		want: "pass select-kernels: func b: param %w is tensor<f32,[4]>, but an earlier function has it as tensor<f32,[3]>",
	}, {
		name: "unsafe in-place update",
		src: `module m
func @a(%w: tensor<f32,[3,3]> param init="zeros", %x: tensor<f32,[3,3]> input) {
  %w.new = matmul %x, %w
  return %w.new as "w" updates %w
}`,
		want: "pass select-kernels: func a: %w.new updates w in place, but matmul reads w and cannot write over it",
	}, {
		name: "old and new value read together",
		src: `module m
func @a(%w: tensor<f32,[3]> param init="zeros", %x: tensor<f32,[3]> input) {
  %w.new = add %w, %x
  %d = sub %w.new, %w
  return %w.new as "w" updates %w, %d as "d"
}`,
		want: "pass select-kernels: func a: cannot update %w in place: an instruction reads both the old and the new value",
	}, {
		name: "update by a parameter",
		src: `module m
func @a(%w: tensor<f32,[3]> param init="zeros", %x: tensor<f32,[3]> input) {
  return %x as "w" updates %w
}`,
		want: `pass select-kernels: func a: output "w" updates %w with %x, which no kernel computes (copies are not supported)`,
	}, {
		name: "no initializer",
		src: `module m
func @a(%w: tensor<f32,[3]> param) {
  %n = neg %w
  return %n as "n"
}`,
		want: "pass select-kernels: param %w has no initializer (want he_normal, xavier_uniform or zeros)",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := selectErr(t, tc.src); err == nil || err.Error() != tc.want {
				t.Errorf("error %v\nwant  %s", err, tc.want)
			}
		})
	}
}

// A reader of a parameter's old value listed after the update in the
// graph runs before the in-place write in the plan.
func TestInPlaceAntiDependency(t *testing.T) {
	src := `module m
func @a(%w: tensor<f32,[3]> param init="zeros", %x: tensor<f32,[3]> input) {
  %w.new = add %w, %x
  %e = exp %w.new
  %old = neg %w
  %s = mul %old, %e
  return %w.new as "w" updates %w, %s as "s"
}`
	for _, cfg := range []Config{{OptLevel: 0}, {OptLevel: 1}} {
		u := newUnit(parseModule(t, src))
		if _, err := Run(u, Config{OptLevel: cfg.OptLevel, Verify: true}); err != nil {
			t.Fatal(err)
		}
		var ops []string
		for _, k := range u.Plan.Programs[0].Kernels {
			ops = append(ops, k.Op)
		}
		if add, neg := slices.Index(ops, "add"), slices.Index(ops, "neg"); neg > add {
			t.Errorf("-O%d: neg of the old %%w runs after the in-place add: %v", cfg.OptLevel, ops)
		}
		f := parseModule(t, src).Funcs[0]
		for seed := uint64(1); seed <= 3; seed++ {
			sameOutputs(t, "a", graphResults(t, f, randomArgs(f, seed, 3)), execPlan(t, u.Plan, "a", randomArgs(f, seed, 3)), 1e-12)
		}
	}
}

func TestScheduleLowersPeak(t *testing.T) {
	// Three big temporaries, each reduced to a small one: in body order
	// all three are live at once; scheduled, one at a time.
	src := `module m
func @f(%x: tensor<f32,[64,64]> input, %y: tensor<f32,[64,64]> input, %z: tensor<f32,[64,64]> input) {
  %a = exp %x
  %b = exp %y
  %c = exp %z
  %ra = reduce_sum %a {axis = 0}
  %rb = reduce_sum %b {axis = 0}
  %rc = reduce_sum %c {axis = 0}
  %s = add %ra, %rb
  %t = add %s, %rc
  return %t as "t"
}`
	u := newUnit(parseModule(t, src))
	runPass(t, u, "select-kernels")
	pr := &u.Plan.Programs[0]
	before := peakTemp(u.Plan, pr, identityOrder(len(pr.Kernels)))
	if !runPass(t, u, "schedule") {
		t.Fatal("schedule changed nothing")
	}
	after := peakTemp(u.Plan, pr, identityOrder(len(pr.Kernels)))
	var ops []string
	for _, k := range pr.Kernels {
		ops = append(ops, k.Op)
	}
	if after >= before || after > 16384+2*256+256 {
		t.Errorf("peak %d -> %d, order %v", before, after, ops)
	}
	runPass(t, u, "plan-memory")
	if u.Plan.Memory.TempBytes != after {
		t.Errorf("plan-memory needs %d bytes for a peak of %d", u.Plan.Memory.TempBytes, after)
	}
	f := parseModule(t, src).Funcs[0]
	sameOutputs(t, "f", graphResults(t, f, randomArgs(f, 1, 3)), execPlan(t, u.Plan, "f", randomArgs(f, 1, 3)), 1e-12)
}

func TestPlanMemory(t *testing.T) {
	for _, cfg := range []Config{{OptLevel: 0}, {OptLevel: 1}} {
		p := lower(t, mlpModule(), cfg).Plan
		m := p.Memory
		if m.TempBytes >= m.NaiveTempBytes {
			t.Errorf("-O%d: no reuse: %d temp bytes, %d naive", cfg.OptLevel, m.TempBytes, m.NaiveTempBytes)
		}
		// Regions: persistent, then inputs, then temporaries.
		region := map[ir.BufferKind]int{ir.BufParam: 0, ir.BufState: 0, ir.BufInput: 1, ir.BufTemp: 2}
		bounds := []int64{0, m.PersistentBytes, m.PersistentBytes + m.InputBytes, m.ArenaBytes}
		for _, b := range p.Buffers {
			r := region[b.Kind]
			if b.Offset%64 != 0 || b.Offset < bounds[r] || b.Offset+b.Bytes > bounds[r+1] {
				t.Errorf("-O%d: %s %s at [%d, %d) is outside its region [%d, %d) or unaligned",
					cfg.OptLevel, b.Kind, b.Name, b.Offset, b.Offset+b.Bytes, bounds[r], bounds[r+1])
			}
		}
		if m.ArenaBytes != m.PersistentBytes+m.InputBytes+m.TempBytes {
			t.Errorf("-O%d: arena %+v", cfg.OptLevel, m)
		}
		for _, pr := range p.Programs {
			checkNoLiveOverlap(t, p, &pr)
		}
	}
}

// checkNoLiveOverlap is the memory plan's invariant, checked here
// independently of ir.VerifyPlan: temporaries live at the same kernel do
// not share bytes.
func checkNoLiveOverlap(t *testing.T, p *ir.Plan, pr *ir.Program) {
	t.Helper()
	first, last := map[int]int{}, map[int]int{}
	use := func(id, k int) {
		if p.Buffers[id].Kind != ir.BufTemp {
			return
		}
		if _, ok := first[id]; !ok {
			first[id] = k
		}
		last[id] = k
	}
	for k, kn := range pr.Kernels {
		for _, id := range append(slices.Clone(kn.Ins), kn.Outs...) {
			use(id, k)
		}
	}
	for _, o := range pr.Outputs {
		use(o.Buffer, len(pr.Kernels))
	}
	for a := range first {
		for b := range first {
			ba, bb := p.Buffers[a], p.Buffers[b]
			if a < b && first[a] <= last[b] && first[b] <= last[a] &&
				ba.Offset < bb.Offset+bb.Bytes && bb.Offset < ba.Offset+ba.Bytes {
				t.Errorf("program %s: %s [k%d..k%d] and %s [k%d..k%d] overlap in the arena",
					pr.Name, ba.Name, first[a], last[a], bb.Name, first[b], last[b])
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	a := planJSON(t, lower(t, mlpModule(), Config{OptLevel: 1, Seed: 3}).Plan)
	for range 3 {
		if b := planJSON(t, lower(t, mlpModule(), Config{OptLevel: 1, Seed: 3}).Plan); a != b {
			t.Fatalf("two builds differ:\n%s\n----\n%s", a, b)
		}
	}
	if b := planJSON(t, lower(t, mlpModule(), Config{OptLevel: 1, Seed: 4}).Plan); a == b {
		t.Error("the seed does not reach the plan")
	}
}

func TestCostTableCoversEveryOp(t *testing.T) {
	for _, d := range ir.Ops() {
		if _, ok := costTable[d.Name]; !ok {
			t.Errorf("no cost rule for op %s", d.Name)
		}
	}
}
