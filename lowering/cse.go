package lowering

import (
	"strconv"
	"strings"

	"github.com/expc-dev/expc/ir"
)

// cse merges pure instructions of one function that have the same op, the
// same arguments and equal (canonical) attributes: later ones are replaced
// by the first. A merged instruction is removed unless an in-place update
// output still names its result (see renamer).
func cse(u *Unit) (bool, error) {
	changed := false
	merged := 0
	for _, f := range u.Module.Funcs {
		id := map[*ir.Value]int{}
		for _, p := range f.Params {
			id[p] = len(id)
		}
		updates := updateValues(f)
		first := map[string]*ir.Instr{}
		repl := renamer{}
		body := f.Body[:0]
		for _, in := range f.Body {
			if repl.args(in) {
				changed = true
			}
			if isPure(in.Op) {
				key := cseKey(in, id)
				if prev, ok := first[key]; ok {
					kept := false
					for i, r := range in.Results {
						repl[r] = prev.Results[i]
						kept = kept || updates[r]
					}
					merged++
					changed = true
					if !kept {
						continue
					}
				} else {
					first[key] = in
				}
			}
			for _, r := range in.Results {
				id[r] = len(id)
			}
			body = append(body, in)
		}
		clear(f.Body[len(body):])
		f.Body = body
		if repl.outputs(f) {
			changed = true
		}
	}
	if merged > 0 {
		u.note = "merged " + strconv.Itoa(merged)
	}
	return changed, nil
}

func cseKey(in *ir.Instr, id map[*ir.Value]int) string {
	var sb strings.Builder
	sb.WriteString(in.Op)
	for _, a := range in.Args {
		sb.WriteString(" %")
		sb.WriteString(strconv.Itoa(id[a]))
	}
	sb.WriteString(" ")
	sb.WriteString(attrKey(in.Op, in.Attrs))
	return sb.String()
}
