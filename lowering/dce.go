package lowering

import (
	"strconv"

	"github.com/expc-dev/expc/ir"
)

// dce removes pure instructions whose results nothing reads. Function
// outputs are the roots; impure instructions (optimizer updates) always
// stay.
func dce(u *Unit) (bool, error) {
	removed := 0
	for _, f := range u.Module.Funcs {
		live := map[*ir.Value]bool{}
		for _, o := range f.Outputs {
			live[o.Value] = true
		}
		keep := make([]bool, len(f.Body))
		for i := len(f.Body) - 1; i >= 0; i-- {
			in := f.Body[i]
			keep[i] = !isPure(in.Op)
			for _, r := range in.Results {
				keep[i] = keep[i] || live[r]
			}
			if keep[i] {
				for _, a := range in.Args {
					live[a] = true
				}
			}
		}
		body := f.Body[:0]
		for i, in := range f.Body {
			if keep[i] {
				body = append(body, in)
			}
		}
		removed += len(f.Body) - len(body)
		clear(f.Body[len(body):])
		f.Body = body
	}
	if removed > 0 {
		u.note = "removed " + strconv.Itoa(removed)
	}
	return removed > 0, nil
}
