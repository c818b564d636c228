package ir

import (
	"errors"
	"fmt"
	"sort"
)

// BufferAlign is the alignment of every buffer offset in the arena, in bytes.
const BufferAlign = 64

// VerifyPlan checks the invariants of a plan and returns all problems joined
// (nil when there are none).
//
// Buffers: ids equal their index; offsets are non-negative multiples of
// BufferAlign; Bytes == Type.Bytes(); every buffer lies within
// Memory.ArenaBytes; param, state and input buffers overlap no other buffer.
//
// Programs: kernels are named k0, k1, ... in order; each kernel's op is in the
// op table, its ins and outs are existing buffers, and its out types are what
// InferTypes gives for its in types and attributes; a temp buffer is written
// before it is read (buffers bound as program inputs count as written at the
// start); bindings name existing buffers; and no two temp buffers that are
// live at the same time share arena bytes. A temp is live from the first
// kernel that writes it through the last kernel that reads it, both
// inclusive, or through the end of the program when it is a program output:
// so a kernel's outputs never share bytes with its inputs.
func VerifyPlan(p *Plan) error {
	if p == nil {
		return errors.New("plan is nil")
	}
	var errs []error
	errf := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for i, b := range p.Buffers {
		where := fmt.Sprintf("buffer b%d (%s)", i, b.Name)
		switch {
		case b.ID != i:
			errf("%s: id is %d, want its index %d", where, b.ID, i)
		case b.Offset < 0:
			errf("%s: negative offset %d", where, b.Offset)
		case b.Offset%BufferAlign != 0:
			errf("%s: offset %d is not aligned to %d bytes", where, b.Offset, BufferAlign)
		}
		if b.Bytes != b.Type.Bytes() {
			errf("%s: %d bytes, but %s takes %d", where, b.Bytes, b.Type, b.Type.Bytes())
		}
		if b.Offset+b.Bytes > p.Memory.ArenaBytes {
			errf("%s: [%d, %d) lies outside the %d-byte arena", where, b.Offset, b.Offset+b.Bytes, p.Memory.ArenaBytes)
		}
		switch b.Kind {
		case BufInput, BufParam, BufState, BufTemp:
		default:
			errf("%s: unknown kind %q", where, b.Kind)
		}
	}
	// Non-temp buffers own their bytes for the whole run. Sorted by offset
	// they must be disjoint, so comparing neighbours finds any overlap among
	// them, and a binary search finds the first one a temp could touch.
	var owned []int
	for i, b := range p.Buffers {
		if b.Kind != BufTemp {
			owned = append(owned, i)
		}
	}
	sort.SliceStable(owned, func(x, y int) bool { return p.Buffers[owned[x]].Offset < p.Buffers[owned[y]].Offset })
	clash := func(i, j int) {
		if i > j {
			i, j = j, i
		}
		a, b := p.Buffers[i], p.Buffers[j]
		errf("buffer b%d (%s, %s) overlaps b%d (%s, %s) in the arena", i, a.Name, a.Kind, j, b.Name, b.Kind)
	}
	for x := 1; x < len(owned); x++ {
		for y := x - 1; y >= 0 && overlaps(p.Buffers[owned[y]], p.Buffers[owned[x]]); y-- {
			clash(owned[y], owned[x])
		}
	}
	for i, b := range p.Buffers {
		if b.Kind != BufTemp {
			continue
		}
		x := sort.Search(len(owned), func(x int) bool {
			o := p.Buffers[owned[x]]
			return o.Offset+o.Bytes > b.Offset
		})
		for ; x < len(owned) && p.Buffers[owned[x]].Offset < b.Offset+b.Bytes; x++ {
			if overlaps(p.Buffers[owned[x]], b) {
				clash(owned[x], i)
			}
		}
	}
	for _, in := range p.Inits {
		if in.Buffer < 0 || in.Buffer >= len(p.Buffers) {
			errf("init %q: no buffer b%d", in.Kind, in.Buffer)
		}
	}
	for i := range p.Programs {
		errs = append(errs, verifyProgram(p, &p.Programs[i])...)
	}
	return errors.Join(errs...)
}

func overlaps(a, b Buffer) bool {
	return a.Bytes > 0 && b.Bytes > 0 && a.Offset < b.Offset+b.Bytes && b.Offset < a.Offset+a.Bytes
}

// span is a temp buffer's live range in kernel indices, both inclusive.
type span struct{ first, last, end int }

func (s span) String() string {
	if s.last >= s.end {
		return fmt.Sprintf("k%d..end", s.first)
	}
	return fmt.Sprintf("k%d..k%d", s.first, s.last)
}

func verifyProgram(p *Plan, pr *Program) []error {
	var errs []error
	errf := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("program %s: "+format, append([]any{pr.Name}, args...)...))
	}
	valid := func(id int) bool { return id >= 0 && id < len(p.Buffers) }
	written := map[int]bool{}
	for _, b := range pr.Inputs {
		if !valid(b.Buffer) {
			errf("input %q: no buffer b%d", b.Name, b.Buffer)
			continue
		}
		written[b.Buffer] = true
	}
	live := map[int]*span{}
	for k, kn := range pr.Kernels {
		where := fmt.Sprintf("kernel %d (%s %s)", k, kn.Name, kn.Op)
		if want := fmt.Sprintf("k%d", k); kn.Name != want {
			errf("%s: named %q, want %q", where, kn.Name, want)
		}
		ok := true
		ins := make([]Type, len(kn.Ins))
		for j, id := range kn.Ins {
			if !valid(id) {
				errf("%s: input %d: no buffer b%d", where, j, id)
				ok = false
				continue
			}
			ins[j] = p.Buffers[id].Type
			if p.Buffers[id].Kind != BufTemp {
				continue
			}
			if !written[id] {
				errf("%s: reads temp b%d (%s) before any kernel writes it", where, id, p.Buffers[id].Name)
			} else if s := live[id]; s != nil {
				s.last = k
			}
		}
		for j, id := range kn.Outs {
			if !valid(id) {
				errf("%s: output %d: no buffer b%d", where, j, id)
				ok = false
				continue
			}
			written[id] = true
			if p.Buffers[id].Kind == BufTemp && live[id] == nil {
				live[id] = &span{k, k, len(pr.Kernels)}
			}
		}
		if _, known := LookupOp(kn.Op); !known {
			errf("%s: unknown op %q", where, kn.Op)
			continue
		}
		if !ok {
			continue
		}
		want, err := InferTypes(kn.Op, ins, kn.Attrs)
		switch {
		case err != nil:
			errf("%s: %v", where, err)
		case len(want) != len(kn.Outs):
			errf("%s: writes %d buffers, %s gives %d results", where, len(kn.Outs), kn.Op, len(want))
		default:
			for j, id := range kn.Outs {
				if t := p.Buffers[id].Type; !t.Equal(want[j]) {
					errf("%s: output b%d (%s) is %s, %s gives %s", where, id, p.Buffers[id].Name, t, kn.Op, want[j])
				}
			}
		}
	}
	for _, b := range pr.Outputs {
		if !valid(b.Buffer) {
			errf("output %q: no buffer b%d", b.Name, b.Buffer)
			continue
		}
		if p.Buffers[b.Buffer].Kind == BufTemp && !written[b.Buffer] {
			errf("output %q: temp b%d is never written", b.Name, b.Buffer)
		}
		if s := live[b.Buffer]; s != nil {
			s.last = len(pr.Kernels)
		}
	}
	errs = append(errs, checkTempOverlap(p, pr, live)...)
	return errs
}

// checkTempOverlap reports temps that are live at once and share arena
// bytes. It sweeps the kernels in order, keeping the live temps sorted by
// offset: if the live set is disjoint, a new temp can only collide with its
// neighbours, so the check is O(n log n) rather than over all pairs (plans
// of deep models have thousands of temps).
func checkTempOverlap(p *Plan, pr *Program, live map[int]*span) []error {
	type entry struct {
		id int
		s  *span
	}
	byFirst := make([]entry, 0, len(live))
	for id, s := range live {
		byFirst = append(byFirst, entry{id, s})
	}
	sort.Slice(byFirst, func(a, b int) bool {
		if byFirst[a].s.first != byFirst[b].s.first {
			return byFirst[a].s.first < byFirst[b].s.first
		}
		return byFirst[a].id < byFirst[b].id
	})
	var errs []error
	var active []entry // live temps, sorted by offset, pairwise disjoint
	end := func(e entry) int64 { return p.Buffers[e.id].Offset + p.Buffers[e.id].Bytes }
	report := func(a, b entry) {
		if a.id > b.id {
			a, b = b, a
		}
		ba, bb := p.Buffers[a.id], p.Buffers[b.id]
		errs = append(errs, fmt.Errorf("program %s: temps b%d (%s, live %s, bytes [%d, %d)) and b%d (%s, live %s, bytes [%d, %d)) overlap in the arena while both are live",
			pr.Name, a.id, ba.Name, a.s, ba.Offset, ba.Offset+ba.Bytes, b.id, bb.Name, b.s, bb.Offset, bb.Offset+bb.Bytes))
	}
	for _, e := range byFirst {
		// Liveness is inclusive at both ends: drop temps that died before e starts.
		kept := active[:0]
		for _, a := range active {
			if a.s.last >= e.s.first {
				kept = append(kept, a)
			}
		}
		active = kept
		off := p.Buffers[e.id].Offset
		i := sort.Search(len(active), func(i int) bool { return p.Buffers[active[i].id].Offset >= off })
		clash := false
		for j := i - 1; j >= 0 && end(active[j]) > off; j-- { // predecessors reaching into e
			report(active[j], e)
			clash = true
		}
		for j := i; j < len(active) && p.Buffers[active[j].id].Offset < end(e); j++ {
			report(active[j], e)
			clash = true
		}
		if !clash { // keep the live set disjoint so neighbour checks stay exact
			active = append(active, entry{})
			copy(active[i+1:], active[i:])
			active[i] = e
		}
	}
	return errs
}
