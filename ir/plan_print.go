package ir

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PrintPlan renders a plan for golden files and `expc explain`:
//
//	plan fmnist-mlp 3f9a1c2e4b7d target=cpu -O2 arena 9.4 MiB (persistent 2.6 MiB, inputs 401.4 KiB, temp 6.4 MiB; naive temp 11.0 MiB)
//	schedule steps=1000 steps_per_epoch=469 eval_every=100 log_every=10 seed=1 lr=cosine(lr=0.1, min_lr=0.0, warmup=100, total=1000)
//	data features=784 classes=10 train=60000 eval=10000 batch=128 eval_batch=1000 shuffle=true
//
//	buffers
//	  b0  w1  param  tensor<f32,[784,512]>  @0  1.5 MiB
//	  ...
//	inits
//	  b0  w1  he_normal  fan_in=784 fan_out=512 scale=0.0505 seed=1
//
//	program train  (inputs x=b7 y=b8 step=b9; outputs loss=b20)  14 kernels, 1.2 GFLOP, 30.1 MB
//	  k0  matmul_bias_act  b7 b0 b1 -> b12  {act = "relu"}  205.5 MFLOP  2.4 MB  fused_from [matmul bias_add relu]
//	  ...
//
//	passes
//	  fuse_gemm  changed  120 -> 96 ops  ...
//
// Columns are aligned within a section. The output depends only on the
// plan's contents (attributes are printed in their op's canonical kinds, so a
// plan read back from JSON prints the same); it holds no timings.
func PrintPlan(p *Plan) string {
	var sb strings.Builder
	mem := p.Memory
	fmt.Fprintf(&sb, "plan %s %s target=%s -O%d arena %s (persistent %s, inputs %s, temp %s; naive temp %s)\n",
		p.Name, p.ShortHash(), p.Target, p.Options.OptLevel, sizeIEC(mem.ArenaBytes),
		sizeIEC(mem.PersistentBytes), sizeIEC(mem.InputBytes), sizeIEC(mem.TempBytes), sizeIEC(mem.NaiveTempBytes))
	if len(p.Options.DisabledPass) > 0 {
		fmt.Fprintf(&sb, "disabled passes: %s\n", strings.Join(p.Options.DisabledPass, ", "))
	}
	s, lr := p.Schedule, p.Schedule.LR
	fmt.Fprintf(&sb, "schedule steps=%d steps_per_epoch=%d eval_every=%d log_every=%d seed=%d lr=%s(lr=%s, min_lr=%s, warmup=%d, total=%d)\n",
		s.Steps, s.StepsPerEpoch, s.EvalEvery, s.LogEvery, s.Seed, lr.Kind, formatFloat(lr.LR), formatFloat(lr.MinLR), lr.Warmup, lr.Total)
	if s.Masks != nil {
		fmt.Fprintf(&sb, "masks %s\n", s.Masks)
	}
	d := p.Data
	fmt.Fprintf(&sb, "data features=%d classes=%d train=%d eval=%d batch=%d eval_batch=%d shuffle=%v\n",
		d.Features, d.Classes, d.TrainN, d.EvalN, d.Batch, d.EvalBatch, d.Shuffle)
	if c := p.Contrastive; c != nil {
		fmt.Fprintf(&sb, "contrastive objective=%s rows=%d probe=%s unfused_arena %s\n", c.Objective, c.Rows, c.Probe.Kind, sizeIEC(c.UnfusedArenaBytes))
	}

	sb.WriteString("\nbuffers\n")
	var rows [][]string
	for _, b := range p.Buffers {
		rows = append(rows, []string{"b" + strconv.Itoa(b.ID), b.Name, string(b.Kind), b.Type.String(),
			"@" + strconv.FormatInt(b.Offset, 10), sizeIEC(b.Bytes)})
	}
	writeTable(&sb, rows, 5)
	if len(p.Inits) > 0 {
		sb.WriteString("inits\n")
		rows = rows[:0]
		for _, in := range p.Inits {
			rows = append(rows, []string{"b" + strconv.Itoa(in.Buffer), bufferName(p, in.Buffer), in.Kind,
				fmt.Sprintf("fan_in=%d fan_out=%d scale=%s seed=%d", in.FanIn, in.FanOut, formatFloat(in.Scale), in.Seed)})
		}
		writeTable(&sb, rows)
	}
	for i := range p.Programs {
		sb.WriteString("\n")
		printProgram(&sb, &p.Programs[i])
	}
	if len(p.Passes) > 0 {
		sb.WriteString("\npasses\n")
		rows = rows[:0]
		for _, ps := range p.Passes {
			changed := "-"
			if ps.Changed {
				changed = "changed"
			}
			rows = append(rows, []string{ps.Name, changed, fmt.Sprintf("%d -> %d ops", ps.Before, ps.After), ps.Note})
		}
		writeTable(&sb, rows)
	}
	return sb.String()
}

func printProgram(sb *strings.Builder, pr *Program) {
	var flops, bytes int64
	for _, k := range pr.Kernels {
		flops += k.FLOPs
		bytes += k.Bytes
	}
	fmt.Fprintf(sb, "program %s  (inputs %s; outputs %s)  %d kernels, %s, %s\n", pr.Name,
		bindings(pr.Inputs), bindings(pr.Outputs), len(pr.Kernels), flopString(flops), sizeSI(bytes))
	var rows [][]string
	for _, k := range pr.Kernels {
		operands := bufList(k.Ins) + " -> " + bufList(k.Outs)
		tail := ""
		if len(k.FusedFrom) > 0 {
			tail = "fused_from [" + strings.Join(k.FusedFrom, " ") + "]"
		}
		if !k.Loc.IsZero() {
			tail = strings.TrimSpace(tail + "  loc(" + k.Loc.String() + ")")
		}
		if len(k.Launch) > 0 {
			tail = strings.TrimSpace(tail + "  launch " + FormatAttrs(NormalizeLaunch(k.Launch)))
		}
		rows = append(rows, []string{k.Name, k.Op, operands, FormatAttrs(NormalizeAttrs(k.Op, k.Attrs)),
			flopString(k.FLOPs), sizeSI(k.Bytes), tail})
	}
	writeTable(sb, rows, 4, 5)
}

func bindings(bs []Binding) string {
	if len(bs) == 0 {
		return "-"
	}
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = fmt.Sprintf("%s=b%d", b.Name, b.Buffer)
	}
	return strings.Join(parts, " ")
}

func bufList(ids []int) string {
	if len(ids) == 0 {
		return "-"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = "b" + strconv.Itoa(id)
	}
	return strings.Join(parts, " ")
}

func bufferName(p *Plan, id int) string {
	if id < 0 || id >= len(p.Buffers) {
		return "?"
	}
	return p.Buffers[id].Name
}

// writeTable writes rows indented by two spaces with columns padded to a
// common width and separated by two spaces; the columns listed in right are
// right-aligned. Trailing blanks are trimmed.
func writeTable(sb *strings.Builder, rows [][]string, right ...int) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		line.WriteString(" ")
		for i, c := range r {
			line.WriteString(" ")
			pad := strings.Repeat(" ", widths[i]-len(c))
			if slices.Contains(right, i) {
				line.WriteString(pad + c)
			} else {
				line.WriteString(c + pad)
			}
			if i < len(r)-1 {
				line.WriteString(" ")
			}
		}
		sb.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// sizeIEC prints a byte count of memory: "512 B", "2.0 KiB", "1.5 MiB".
func sizeIEC(n int64) string {
	return scaled(n, 1024, []string{"B", "KiB", "MiB", "GiB", "TiB"})
}

// sizeSI prints bytes moved: "512 B", "2.4 MB".
func sizeSI(n int64) string { return scaled(n, 1000, []string{"B", "kB", "MB", "GB", "TB"}) }

func flopString(n int64) string {
	return scaled(n, 1000, []string{"FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP"})
}

func scaled(n, base int64, units []string) string {
	if n < base && n > -base {
		return fmt.Sprintf("%d %s", n, units[0])
	}
	f, i := float64(n), 0
	for (f >= float64(base) || f <= -float64(base)) && i < len(units)-1 {
		f /= float64(base)
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
