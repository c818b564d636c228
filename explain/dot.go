package explain

import (
	"fmt"
	"io"
	"strconv"

	"github.com/expc-dev/expc/ir"
)

// Dot writes the plan as a Graphviz digraph: one cluster per program,
// kernels as boxes, buffers as ellipses (parameters and state shaded), edges
// along the data flow.
func Dot(w io.Writer, p *ir.Plan, _ *ir.Timings) error {
	fmt.Fprintf(w, "digraph %s {\n", strconv.Quote(p.Name))
	fmt.Fprintln(w, "  rankdir=TB; node [fontname=\"Helvetica\", fontsize=10]; edge [color=\"#555555\"];")
	for _, prog := range p.Programs {
		fmt.Fprintf(w, "  subgraph %s {\n    label=%s; color=\"#999999\";\n",
			strconv.Quote("cluster_"+prog.Name), strconv.Quote("program "+prog.Name))
		seen := map[int]bool{}
		buf := func(id int) string {
			node := strconv.Quote(fmt.Sprintf("%s_b%d", prog.Name, id))
			if !seen[id] {
				seen[id] = true
				b := p.Buffers[id]
				style := ""
				if b.Kind.Persistent() {
					style = ", style=filled, fillcolor=\"#e8eef7\""
				} else if b.Kind == ir.BufInput {
					style = ", style=filled, fillcolor=\"#eef7e8\""
				}
				fmt.Fprintf(w, "    %s [shape=ellipse, label=%s%s];\n", node,
					strconv.Quote(b.Name+"\n"+b.Type.String()), style)
			}
			return node
		}
		for _, k := range prog.Kernels {
			kn := strconv.Quote(prog.Name + "_" + k.Name)
			label := k.Name + ": " + k.Op + "\n" + SI(k.FLOPs, "FLOP")
			fmt.Fprintf(w, "    %s [shape=box, style=rounded, label=%s];\n", kn, strconv.Quote(label))
			for _, in := range k.Ins {
				fmt.Fprintf(w, "    %s -> %s;\n", buf(in), kn)
			}
			for _, out := range k.Outs {
				fmt.Fprintf(w, "    %s -> %s;\n", kn, buf(out))
			}
		}
		fmt.Fprintln(w, "  }")
	}
	fmt.Fprintln(w, "}")
	return nil
}
