package ir

import (
	"errors"
	"fmt"
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
	// Non-temp buffers own their bytes for the whole run.
	for i, a := range p.Buffers {
		if a.Kind == BufTemp {
			continue
		}
		for j, b := range p.Buffers {
			if j != i && (b.Kind == BufTemp || j > i) && overlaps(a, b) {
				errf("buffer b%d (%s, %s) overlaps b%d (%s, %s) in the arena", i, a.Name, a.Kind, j, b.Name, b.Kind)
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

// checkTempOverlap reports pairs of temps that are live at once and share
// arena bytes.
func checkTempOverlap(p *Plan, pr *Program, live map[int]*span) []error {
	var errs []error
	for i := range p.Buffers {
		si := live[i]
		if si == nil {
			continue
		}
		for j := i + 1; j < len(p.Buffers); j++ {
			sj := live[j]
			if sj == nil || si.first > sj.last || sj.first > si.last || !overlaps(p.Buffers[i], p.Buffers[j]) {
				continue
			}
			a, b := p.Buffers[i], p.Buffers[j]
			errs = append(errs, fmt.Errorf("program %s: temps b%d (%s, live %s, bytes [%d, %d)) and b%d (%s, live %s, bytes [%d, %d)) overlap in the arena while both are live",
				pr.Name, i, a.Name, si, a.Offset, a.Offset+a.Bytes, j, b.Name, sj, b.Offset, b.Offset+b.Bytes))
		}
	}
	return errs
}
