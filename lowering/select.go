package lowering

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"

	"github.com/expc-dev/expc/ir"
)

// selectKernels turns the graph into a plan: buffers, parameter
// initializers and one program per function, one kernel per instruction.
//
// Buffers, in this order (a buffer's ID is its index):
//   - parameters and optimizer state (RoleParam, RoleState): persistent,
//     named as in the graph and shared by name across functions;
//   - per-step inputs (RoleInput): "<func>.<param>", one per function;
//   - temporaries: "<func>.<value>", one per result, except a result that an
//     output writes in place (Output.Updates), which is the parameter's
//     buffer: its kernel writes the new value over the old one.
//
// Kernels come out in body order, except that a kernel writing a
// parameter in place waits until every kernel reading the old value has
// run; the schedule pass may reorder them further. The buffers get a naive
// layout (no reuse) so the plan is complete after this pass; plan-memory
// packs them.
func selectKernels(u *Unit) (bool, error) {
	s := &selector{u: u, plan: u.Plan, persistent: map[string]int{}, vals: map[*ir.Value]int{}}
	s.plan.Buffers, s.plan.Inits, s.plan.Programs = []ir.Buffer{}, []ir.Init{}, []ir.Program{}
	for _, f := range u.Module.Funcs {
		for _, p := range f.Params {
			if p.Role == ir.RoleParam || p.Role == ir.RoleState {
				if err := s.persistentBuffer(f, p); err != nil {
					return false, err
				}
			}
		}
	}
	for _, f := range u.Module.Funcs {
		for _, p := range f.Params {
			if p.Role != ir.RoleParam && p.Role != ir.RoleState {
				s.vals[p] = s.buffer(f.Name+"."+p.Name, p.Type, ir.BufInput)
			}
		}
	}
	for _, f := range u.Module.Funcs {
		pr, err := s.program(f)
		if err != nil {
			return false, fmt.Errorf("func %s: %w", f.Name, err)
		}
		s.plan.Programs = append(s.plan.Programs, pr)
	}
	if err := s.inits(); err != nil {
		return false, err
	}
	layoutNaive(s.plan)
	return true, nil
}

type selector struct {
	u          *Unit
	plan       *ir.Plan
	persistent map[string]int    // persistent buffers by name
	vals       map[*ir.Value]int // every value's buffer
	initOf     map[int]string    // initializer of each param buffer
}

func (s *selector) buffer(name string, t ir.Type, kind ir.BufferKind) int {
	id := len(s.plan.Buffers)
	s.plan.Buffers = append(s.plan.Buffers, ir.Buffer{ID: id, Name: name, Type: t, Kind: kind, Bytes: t.Bytes()})
	return id
}

func (s *selector) persistentBuffer(f *ir.Func, p *ir.Value) error {
	kind := ir.BufState
	if p.Role == ir.RoleParam {
		kind = ir.BufParam
	}
	id, seen := s.persistent[p.Name]
	if !seen {
		id = s.buffer(p.Name, p.Type, kind)
		s.persistent[p.Name] = id
		if s.initOf == nil {
			s.initOf = map[int]string{}
		}
		s.initOf[id] = p.Init
	}
	b := s.plan.Buffers[id]
	switch {
	case !b.Type.Equal(p.Type):
		return fmt.Errorf("func %s: %s %%%s is %s, but an earlier function has it as %s", f.Name, p.Role, p.Name, p.Type, b.Type)
	case b.Kind != kind:
		return fmt.Errorf("func %s: %%%s is a %s here, but a %s in an earlier function", f.Name, p.Name, kind, b.Kind)
	case kind == ir.BufParam && s.initOf[id] != p.Init:
		return fmt.Errorf("func %s: param %%%s has initializer %q here, but %q in an earlier function", f.Name, p.Name, p.Init, s.initOf[id])
	}
	s.vals[p] = id
	return nil
}

// program selects the kernels of one function.
func (s *selector) program(f *ir.Func) (ir.Program, error) {
	pr := ir.Program{Name: f.Name, Inputs: []ir.Binding{}, Outputs: []ir.Binding{}, Kernels: []ir.Kernel{}}
	inPlace, err := s.inPlaceUpdates(f)
	if err != nil {
		return pr, err
	}
	for _, in := range f.Body {
		for _, r := range in.Results {
			if id, ok := inPlace[r]; ok {
				s.vals[r] = id
			} else {
				s.vals[r] = s.buffer(f.Name+"."+r.Name, r.Type, ir.BufTemp)
			}
		}
	}
	order, err := inPlaceOrder(f, inPlace)
	if err != nil {
		return pr, err
	}
	for _, in := range order {
		k, err := s.kernel(in)
		if err != nil {
			return pr, err
		}
		for _, r := range in.Results {
			if id, ok := inPlace[r]; ok && slices.Contains(k.Ins, id) && !inPlaceSafe(in.Op) {
				return pr, fmt.Errorf("%%%s updates %s in place, but %s reads %s and cannot write over it",
					r.Name, s.plan.Buffers[id].Name, in.Op, s.plan.Buffers[id].Name)
			}
		}
		k.Name = fmt.Sprintf("k%d", len(pr.Kernels))
		pr.Kernels = append(pr.Kernels, k)
	}
	for _, p := range f.Params {
		if p.Role != ir.RoleParam && p.Role != ir.RoleState {
			pr.Inputs = append(pr.Inputs, ir.Binding{Name: p.Name, Buffer: s.vals[p]})
		}
	}
	for _, o := range f.Outputs {
		if o.Updates != nil {
			continue
		}
		id, ok := s.vals[o.Value]
		if !ok {
			return pr, fmt.Errorf("output %q: %%%s is not a value of this function", o.Name, o.Value.Name)
		}
		pr.Outputs = append(pr.Outputs, ir.Binding{Name: o.Name, Buffer: id})
	}
	return pr, nil
}

// inPlaceUpdates maps each value that an output writes in place to the
// buffer it overwrites. An output whose value is the parameter itself
// (nothing changed) needs no kernel and is left out.
func (s *selector) inPlaceUpdates(f *ir.Func) (map[*ir.Value]int, error) {
	inPlace := map[*ir.Value]int{}
	written := map[int]string{}
	for _, o := range f.Outputs {
		if o.Updates == nil || o.Value == o.Updates {
			continue
		}
		id, ok := s.vals[o.Updates]
		if !ok || !slices.Contains(f.Params, o.Updates) || !s.plan.Buffers[id].Kind.Persistent() {
			return nil, fmt.Errorf("output %q updates %%%s, which is not a param or state of this function", o.Name, o.Updates.Name)
		}
		switch prev, dup := written[id]; {
		case dup:
			return nil, fmt.Errorf("outputs %q and %q both update %%%s", prev, o.Name, o.Updates.Name)
		case o.Value.Def == nil:
			return nil, fmt.Errorf("output %q updates %%%s with %%%s, which no kernel computes (copies are not supported)",
				o.Name, o.Updates.Name, o.Value.Name)
		case !o.Value.Type.Equal(o.Updates.Type):
			return nil, fmt.Errorf("output %q updates %%%s (%s) with %%%s (%s)", o.Name, o.Updates.Name, o.Updates.Type, o.Value.Name, o.Value.Type)
		}
		if _, dup := inPlace[o.Value]; dup {
			return nil, fmt.Errorf("output %q: %%%s already updates another buffer in place", o.Name, o.Value.Name)
		}
		written[id] = o.Name
		inPlace[o.Value] = id
	}
	return inPlace, nil
}

// inPlaceSafe ops read and write element i only, so their output may be
// one of their inputs.
func inPlaceSafe(op string) bool {
	d, ok := ir.LookupOp(op)
	return ok && d.Elementwise || op == "sgd" || op == "adamw" || op == "mask_update"
}

// inPlaceOrder is the body in order, except that an instruction whose
// result overwrites a parameter comes after every reader of the
// parameter's old value (Kahn's algorithm, earliest body position first).
func inPlaceOrder(f *ir.Func, inPlace map[*ir.Value]int) ([]*ir.Instr, error) {
	if len(inPlace) == 0 {
		return f.Body, nil
	}
	pos := map[*ir.Instr]int{}
	for i, in := range f.Body {
		pos[in] = i
	}
	succ := make([][]int, len(f.Body))
	indeg := make([]int, len(f.Body))
	edge := func(from, to int) {
		if from != to {
			succ[from] = append(succ[from], to)
			indeg[to]++
		}
	}
	overwritten := map[*ir.Value]*ir.Instr{} // param → the instruction writing over it
	for _, o := range f.Outputs {
		if _, ok := inPlace[o.Value]; ok {
			overwritten[o.Updates] = o.Value.Def
		}
	}
	for i, in := range f.Body {
		for _, a := range in.Args {
			if a.Def != nil {
				edge(pos[a.Def], i)
			}
			if w, ok := overwritten[a]; ok {
				edge(i, pos[w])
			}
		}
	}
	var order []*ir.Instr
	done := make([]bool, len(f.Body))
	for len(order) < len(f.Body) {
		next := -1
		for i := range f.Body {
			if !done[i] && indeg[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			var names []string
			for p, w := range overwritten {
				if !done[pos[w]] {
					names = append(names, "%"+p.Name)
				}
			}
			slices.Sort(names)
			return nil, fmt.Errorf("cannot update %s in place: an instruction reads both the old and the new value",
				strings.Join(names, ", "))
		}
		done[next] = true
		order = append(order, f.Body[next])
		for _, j := range succ[next] {
			indeg[j]--
		}
	}
	return order, nil
}

func (s *selector) kernel(in *ir.Instr) (ir.Kernel, error) {
	k := ir.Kernel{Op: in.Op, Ins: make([]int, len(in.Args)), Outs: make([]int, len(in.Results)),
		Attrs: normAttrs(in.Op, in.Attrs), Loc: in.Loc}
	if from := s.u.FusedFrom[in]; len(from) > 0 {
		k.FusedFrom = slices.Clone(from)
	}
	args := make([]ir.Type, len(in.Args))
	for i, a := range in.Args {
		id, ok := s.vals[a]
		if !ok {
			return k, fmt.Errorf("%s reads %%%s, which is not a value of this function", in.Op, a.Name)
		}
		k.Ins[i], args[i] = id, a.Type
	}
	results := make([]ir.Type, len(in.Results))
	for i, r := range in.Results {
		k.Outs[i], results[i] = s.vals[r], r.Type
	}
	flops, bytes, ok := kernelCost(in.Op, args, results, in.Attrs)
	if !ok {
		return k, fmt.Errorf("no kernel cost rule for op %s", in.Op)
	}
	k.FLOPs, k.Bytes = flops, bytes
	return k, nil
}

// inits gives every param buffer its initializer.
func (s *selector) inits() error {
	for _, b := range s.plan.Buffers {
		if b.Kind != ir.BufParam {
			continue
		}
		in, err := paramInit(b, s.initOf[b.ID], s.u.seed)
		if err != nil {
			return err
		}
		s.plan.Inits = append(s.plan.Inits, in)
	}
	return nil
}

// paramInit computes fans and scale: fan_in is the first dimension,
// fan_out the rest (a vector's fans are both its length).
func paramInit(b ir.Buffer, kind string, seed int) (ir.Init, error) {
	fanIn, fanOut := 1, 1
	switch shape := b.Type.Shape; len(shape) {
	case 0:
	case 1:
		fanIn, fanOut = shape[0], shape[0]
	default:
		fanIn, fanOut = shape[0], int(shape[1:].Elems())
	}
	in := ir.Init{Buffer: b.ID, Kind: kind, FanIn: fanIn, FanOut: fanOut, Seed: initSeed(seed, b.Name)}
	switch kind {
	case "he_normal":
		in.Scale = math.Sqrt(2 / float64(max(fanIn, 1)))
	case "xavier_uniform":
		in.Scale = math.Sqrt(6 / float64(max(fanIn+fanOut, 1)))
	case "zeros":
	case "":
		return in, fmt.Errorf("param %%%s has no initializer (want he_normal, xavier_uniform or zeros)", b.Name)
	default:
		return in, fmt.Errorf("param %%%s: unknown initializer %q (want he_normal, xavier_uniform or zeros)", b.Name, kind)
	}
	return in, nil
}

// initSeed is the RNG stream of a parameter: FNV-1a of its name mixed with
// the run's seed (splitmix64's finalizer), so streams differ per parameter
// and per seed and do not depend on buffer order.
func initSeed(seed int, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	z := h.Sum64() ^ (uint64(seed) * 0x9e3779b97f4a7c15)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// layoutNaive gives every buffer its own aligned place, in ID order.
func layoutNaive(p *ir.Plan) {
	var off int64
	m := ir.Memory{}
	for i := range p.Buffers {
		b := &p.Buffers[i]
		b.Offset = off
		off += align(b.Bytes)
		switch {
		case b.Kind.Persistent():
			m.PersistentBytes += align(b.Bytes)
		case b.Kind == ir.BufInput:
			m.InputBytes += align(b.Bytes)
		default:
			m.TempBytes += align(b.Bytes)
		}
	}
	m.NaiveTempBytes = m.TempBytes
	m.ArenaBytes = off
	p.Memory = m
}
