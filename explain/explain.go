// Package explain renders what the compiler did to a plan: the passes that
// ran (with their times when known), the kernels in launch order and the
// memory plan, as text for people, JSON for machines and DOT for Graphviz.
package explain

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/expc-dev/expc/compiler"
	"github.com/expc-dev/expc/ir"
)

// Formats lists the renderers by name, for the CLI's --format flag.
var Formats = map[string]func(w io.Writer, p *ir.Plan, t *ir.Timings) error{
	"text": Text,
	"json": JSON,
	"dot":  Dot,
}

// Report is the stable machine form (`expc explain --format json`).
type Report struct {
	Hash     string      `json:"hash"`
	Name     string      `json:"name"`
	Target   string      `json:"target"`
	Compiler string      `json:"compiler"`
	Options  ir.Options  `json:"options"`
	Passes   []PassInfo  `json:"passes"`
	Kernels  []KernelRow `json:"kernels"`
	Memory   ir.Memory   `json:"memory"`
	Totals   Totals      `json:"totals"`
	// Contrastive says which kernels compute a contrastive loss (nil when
	// the plan has none).
	Contrastive *ContrastiveInfo `json:"contrastive,omitempty"`
	// Sparsity describes each masked layer of a sparse-training plan.
	Sparsity []SparseLayer `json:"sparsity,omitempty"`
	// MoE is the routing plan of each mixture-of-experts layer.
	MoE []MoELayer `json:"moe,omitempty"`
}

// PassInfo is one pass that ran; Seconds is null when the timings of the
// build that made this plan are not available.
type PassInfo struct {
	Name      string   `json:"name"`
	Seconds   *float64 `json:"seconds"`
	Changed   bool     `json:"changed"`
	OpsBefore int      `json:"ops_before"`
	OpsAfter  int      `json:"ops_after"`
}

// KernelRow is one kernel launch.
type KernelRow struct {
	Program   string   `json:"program"`
	Name      string   `json:"name"`
	Op        string   `json:"op"`
	FusedFrom []string `json:"fused_from"`
	Shapes    Shapes   `json:"shapes"`
	FLOPs     int64    `json:"flops"`
	Bytes     int64    `json:"bytes"`
	Loc       string   `json:"loc,omitempty"`
}

// Shapes are a kernel's operand types.
type Shapes struct {
	Ins  []string `json:"ins"`
	Outs []string `json:"outs"`
}

// Totals sum the kernels of each program.
type Totals struct {
	TrainFLOPs int64 `json:"train_step_flops"`
	EvalFLOPs  int64 `json:"eval_step_flops"`
}

// Build assembles the report for a plan and (optionally) its timings.
func Build(p *ir.Plan, t *ir.Timings) Report {
	r := Report{Hash: p.Hash, Name: p.Name, Target: p.Target, Compiler: p.Compiler, Options: p.Options, Memory: p.Memory,
		Contrastive: contrastiveInfo(p), Sparsity: sparsityReport(p), MoE: moeReport(p)}
	secs := map[string]float64{}
	if t != nil && t.Hash == p.Hash {
		for _, pt := range t.Passes {
			secs[pt.Name] = pt.Seconds
		}
	}
	for _, pr := range p.Passes {
		info := PassInfo{Name: pr.Name, Changed: pr.Changed, OpsBefore: pr.Before, OpsAfter: pr.After}
		if s, ok := secs[pr.Name]; ok {
			info.Seconds = &s
		}
		r.Passes = append(r.Passes, info)
	}
	for _, prog := range p.Programs {
		for _, k := range prog.Kernels {
			row := KernelRow{Program: prog.Name, Name: k.Name, Op: k.Op, FusedFrom: k.FusedFrom,
				FLOPs: k.FLOPs, Bytes: k.Bytes, Loc: locString(k.Loc)}
			if row.FusedFrom == nil {
				row.FusedFrom = []string{}
			}
			for _, id := range k.Ins {
				row.Shapes.Ins = append(row.Shapes.Ins, p.Buffers[id].Type.String())
			}
			for _, id := range k.Outs {
				row.Shapes.Outs = append(row.Shapes.Outs, p.Buffers[id].Type.String())
			}
			r.Kernels = append(r.Kernels, row)
			switch prog.Name {
			case "train":
				r.Totals.TrainFLOPs += k.FLOPs
			case "eval":
				r.Totals.EvalFLOPs += k.FLOPs
			}
		}
	}
	return r
}

func locString(l ir.Loc) string {
	if l.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", l.File, l.Line, l.Col)
}

// JSON writes the Report.
func JSON(w io.Writer, p *ir.Plan, t *ir.Timings) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Build(p, t))
}

// Text writes the report for people.
func Text(w io.Writer, p *ir.Plan, t *ir.Timings) error {
	r := Build(p, t)
	fmt.Fprintf(w, "plan %s %s  target %s  compiler %s  -O%d", r.Name, shortHash(r.Hash), r.Target, r.Compiler, r.Options.OptLevel)
	if len(r.Options.DisabledPass) > 0 {
		fmt.Fprintf(w, "  disabled %s", strings.Join(r.Options.DisabledPass, ","))
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "\npasses")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var total float64
	for _, ps := range r.Passes {
		time := "-"
		if ps.Seconds != nil {
			time = fmt.Sprintf("%.2f ms", *ps.Seconds*1e3)
			total += *ps.Seconds
		}
		changed := ""
		if ps.Changed {
			changed = "changed"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d -> %d ops\t%s\n", ps.Name, time, ps.OpsBefore, ps.OpsAfter, changed)
	}
	tw.Flush()
	if t == nil || t.Hash != p.Hash {
		fmt.Fprintln(w, "  (pass times unknown: the timings of the build that wrote this plan are not next to it)")
	} else {
		fmt.Fprintf(w, "  total %.2f ms\n", total*1e3)
	}

	for _, prog := range p.Programs {
		fmt.Fprintf(w, "\nprogram %s  (%d kernels)\n", prog.Name, len(prog.Kernels))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  kernel\top\tshapes\tFLOPs\tbytes\tfused from\tfrom")
		var flops int64
		for _, row := range r.Kernels {
			if row.Program != prog.Name {
				continue
			}
			flops += row.FLOPs
			fmt.Fprintf(tw, "  %s\t%s\t%s -> %s\t%s\t%s\t%s\t%s\n", row.Name, row.Op,
				compact(row.Shapes.Ins), compact(row.Shapes.Outs),
				SI(row.FLOPs, "FLOP"), compiler.HumanBytes(row.Bytes), strings.Join(row.FusedFrom, "+"), row.Loc)
		}
		tw.Flush()
		fmt.Fprintf(w, "  total %s per step\n", SI(flops, "FLOP"))
	}

	m := r.Memory
	fmt.Fprintf(w, "\nmemory  arena %s = persistent %s + inputs %s + temp %s (without reuse temp would be %s)\n",
		compiler.HumanBytes(m.ArenaBytes), compiler.HumanBytes(m.PersistentBytes), compiler.HumanBytes(m.InputBytes),
		compiler.HumanBytes(m.TempBytes), compiler.HumanBytes(m.NaiveTempBytes))
	writeContrastive(w, r.Contrastive)
	writeSparsity(w, r.Sparsity, p.Schedule.Steps, r.Target)
	writeMoE(w, r.MoE)
	return nil
}

// compact shortens tensor<f32,[128,784]> to f32[128,784] for the table.
func compact(types []string) string {
	out := make([]string, len(types))
	for i, t := range types {
		t = strings.TrimSuffix(strings.TrimPrefix(t, "tensor<"), ">")
		out[i] = strings.Replace(t, ",", "", 1)
	}
	return strings.Join(out, " ")
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// SI prints a count with a decimal prefix: 205.5 MFLOP.
func SI(n int64, unit string) string {
	f := float64(n)
	for _, p := range []string{"", "k", "M", "G", "T"} {
		if f < 1000 || p == "T" {
			if p == "" {
				return fmt.Sprintf("%d %s", n, unit)
			}
			return fmt.Sprintf("%.1f %s%s", f, p, unit)
		}
		f /= 1000
	}
	return ""
}
