package explain

import (
	"fmt"
	"io"
	"strings"

	"github.com/expc-dev/expc/ir"
)

// MoELayer is the routing plan of one mixture-of-experts layer in one
// program: how tokens are routed and the shapes of the expert GEMMs.
type MoELayer struct {
	Program  string `json:"program"`
	Loc      string `json:"loc,omitempty"`
	Fused    bool   `json:"fused"` // a gating kernel and grouped GEMMs (fuse-moe-gating), or per-expert kernels
	Tokens   int    `json:"tokens"`
	Experts  int    `json:"experts"`
	TopK     int    `json:"top_k"`
	Gate     string `json:"gate"`
	RouterAc string `json:"router_activation,omitempty"`
	// Capacity is the tokens an expert takes; Dropless when that is every token.
	Capacity int  `json:"capacity"`
	Dropless bool `json:"dropless"`
	// Slots is the number of routed rows the grouped GEMMs have room for
	// (fused); the unfused plan runs every expert on Capacity rows.
	Slots       int       `json:"slots,omitempty"`
	LoadBalance float64   `json:"load_balance,omitempty"`
	ZLoss       float64   `json:"z_loss,omitempty"`
	Width       int       `json:"width"`
	Hidden      int       `json:"hidden"`
	Activation  string    `json:"activation"`
	Kernels     []string  `json:"kernels"` // the layer's kernels, "k3 moe_route"
	GEMMs       []MoEGEMM `json:"gemms"`
}

// MoEGEMM is one expert product: rows "n_e" are the expert's routed tokens
// (decided at run time) in a fused plan, the capacity otherwise.
type MoEGEMM struct {
	Pass  string `json:"pass"` // forward | backward
	Shape string `json:"shape"`
}

func moeReport(p *ir.Plan) []MoELayer {
	var out []MoELayer
	for _, pr := range p.Programs {
		for i := range pr.Kernels {
			k := &pr.Kernels[i]
			switch k.Op {
			case "moe_route":
				out = append(out, fusedMoE(p, &pr, k))
			case "moe_gate":
				if l, ok := unfusedMoE(p, &pr, k); ok {
					out = append(out, l)
				}
			}
		}
	}
	return out
}

func kname(k *ir.Kernel) string { return k.Name + " " + k.Op }

func moeHeader(p *ir.Plan, pr *ir.Program, k *ir.Kernel) MoELayer {
	h := p.Buffers[k.Ins[0]].Type
	l := MoELayer{Program: pr.Name, Loc: locString(k.Loc), Tokens: h.Shape[0], Experts: h.Shape[1],
		TopK: k.Attrs.Int("k", 1), Gate: k.Attrs.Str("gate", "topk_softmax"), RouterAc: k.Attrs.Str("act", "")}
	if k.Attrs.Bool("renormalize", false) {
		l.Gate += " (renormalized)"
	}
	return l
}

func fusedMoE(p *ir.Plan, pr *ir.Program, route *ir.Kernel) MoELayer {
	l := moeHeader(p, pr, route)
	l.Fused = true
	l.Capacity = route.Attrs.Int("capacity", 0)
	l.Dropless = l.Capacity >= l.Tokens
	l.LoadBalance, l.ZLoss = route.Attrs.Float("load_balance", 0), route.Attrs.Float("z_loss", 0)
	perm := route.Outs[0]
	l.Slots = int(p.Buffers[perm].Type.Shape[0])
	l.Kernels = []string{kname(route)}
	for i := range pr.Kernels {
		k := &pr.Kernels[i]
		if k == route || len(k.Ins) < 2 {
			continue
		}
		reads := func(id int) bool {
			for _, in := range k.Ins {
				if in == id {
					return true
				}
			}
			return false
		}
		if !strings.HasPrefix(k.Op, "moe_") || !(reads(perm) || reads(route.Outs[3]) || reads(route.Outs[1])) {
			continue
		}
		l.Kernels = append(l.Kernels, kname(k))
		switch k.Op {
		case "moe_ffn":
			w1 := p.Buffers[k.Ins[3]].Type
			l.Width, l.Hidden, l.Activation = w1.Shape[0], w1.Shape[1], k.Attrs.Str("act", "")
			d, h, a := l.Width, l.Hidden, l.Activation
			l.GEMMs = append(l.GEMMs,
				MoEGEMM{"forward", fmt.Sprintf("[n_e,%d]·[%d,%d] + b, %s", d, d, h, a)},
				MoEGEMM{"forward", fmt.Sprintf("[n_e,%d]·[%d,%d] + b", h, h, d)})
		case "moe_ffn_grad":
			d, h, a := l.Width, l.Hidden, l.Activation
			l.GEMMs = append(l.GEMMs,
				MoEGEMM{"backward", fmt.Sprintf("[n_e,%d]·[%d,%d]ᵀ ⊙ %s'", d, h, d, a)},
				MoEGEMM{"backward", fmt.Sprintf("[n_e,%d]ᵀ·[n_e,%d] (dW2)", h, d)},
				MoEGEMM{"backward", fmt.Sprintf("[n_e,%d]ᵀ·[n_e,%d] (dW1)", d, h)})
			if k.Attrs.Bool("dx", false) {
				l.GEMMs = append(l.GEMMs, MoEGEMM{"backward", fmt.Sprintf("[n_e,%d]·[%d,%d]ᵀ (dx)", h, d, h)})
			}
		}
	}
	return l
}

// unfusedMoE describes a layer the pass left alone (or -O0): a gate, one
// dispatch per expert, and GEMMs over capacity-padded rows.
func unfusedMoE(p *ir.Plan, pr *ir.Program, gate *ir.Kernel) (MoELayer, bool) {
	l := moeHeader(p, pr, gate)
	l.Kernels = []string{kname(gate)}
	h := gate.Ins[0]
	for i := range pr.Kernels {
		k := &pr.Kernels[i]
		if k.Op != "moe_dispatch" || k.Ins[0] != h {
			continue
		}
		l.Kernels = append(l.Kernels, kname(k))
		l.Capacity = k.Attrs.Int("capacity", 0)
	}
	if len(l.Kernels) == 1 {
		return l, false // a gate without experts (a gaussian_moe head)
	}
	l.Dropless = l.Capacity >= l.Tokens
	l.GEMMs = []MoEGEMM{{"forward", fmt.Sprintf("%d experts × [%d rows (capacity, padded), d]·[d, hidden] and back", l.Experts, l.Capacity)}}
	return l, true
}

func writeMoE(w io.Writer, layers []MoELayer) {
	if len(layers) == 0 {
		return
	}
	fmt.Fprintln(w, "\nmoe layers")
	for _, l := range layers {
		drop := fmt.Sprintf("capacity %d tokens per expert, the rest dropped", l.Capacity)
		if l.Dropless {
			drop = "dropless"
		}
		act := ""
		if l.RouterAc != "" {
			act = ", router activation " + l.RouterAc
		}
		aux := ""
		if l.LoadBalance != 0 || l.ZLoss != 0 {
			aux = fmt.Sprintf(", aux load_balance %g z_loss %g", l.LoadBalance, l.ZLoss)
		}
		fmt.Fprintf(w, "  %s  %s: %d tokens -> %d experts, top-%d %s%s, %s%s\n", l.Program, l.Loc, l.Tokens, l.Experts, l.TopK, l.Gate, act, drop, aux)
		if !l.Fused {
			fmt.Fprintf(w, "    unfused: %s\n", strings.Join(l.Kernels, ", "))
			for _, g := range l.GEMMs {
				fmt.Fprintf(w, "    %-9s %s\n", g.Pass, g.Shape)
			}
			continue
		}
		fmt.Fprintf(w, "    routing   %d slots (T·k%s), permutation grouped by expert: %s\n", l.Slots, capNote(l), strings.Join(l.Kernels, ", "))
		fmt.Fprintf(w, "    expert GEMMs over each expert's n_e routed rows (Σ n_e ≤ %d, no padding), FFN %d-%d-%d %s:\n", l.Slots, l.Width, l.Hidden, l.Width, l.Activation)
		for _, g := range l.GEMMs {
			fmt.Fprintf(w, "      %-9s %s\n", g.Pass, g.Shape)
		}
	}
}

func capNote(l MoELayer) string {
	if l.Dropless {
		return ""
	}
	return fmt.Sprintf(", at most %d·%d by capacity", l.Experts, l.Capacity)
}
