package explain

import (
	"fmt"
	"io"
	"strings"

	"github.com/expc-dev/expc/compiler"
	"github.com/expc-dev/expc/ir"
)

// ContrastiveInfo is the contrastive section of a report: the kernels that
// compute the loss and what fusing them saves.
type ContrastiveInfo struct {
	Objective string            `json:"objective"`
	Kernels   []ContrastiveLoss `json:"loss_kernels"`
	// ArenaBytes of this plan and of the same plan built without
	// fuse-contrastive (0: not recorded, or nothing was fused).
	ArenaBytes        int64 `json:"arena_bytes"`
	UnfusedArenaBytes int64 `json:"unfused_arena_bytes"`
	SavedBytes        int64 `json:"saved_bytes"`
}

// ContrastiveLoss is one kernel computing (part of) the loss.
type ContrastiveLoss struct {
	Program string `json:"program"`
	Kernel  string `json:"kernel"`
	Op      string `json:"op"`
	Rows    int    `json:"rows"`
	Tile    int    `json:"tile,omitempty"` // fused: rows per block; tiles are tile×tile
	// WorkspaceBytes is what the fused kernel allocates beside the arena
	// (unit rows and per-row state), PerWorkerBytes its tiles per worker.
	WorkspaceBytes int64 `json:"workspace_bytes,omitempty"`
	PerWorkerBytes int64 `json:"per_worker_bytes,omitempty"`
}

func contrastiveInfo(p *ir.Plan) *ContrastiveInfo {
	if p.Contrastive == nil {
		return nil
	}
	info := &ContrastiveInfo{Objective: p.Contrastive.Objective, ArenaBytes: p.Memory.ArenaBytes, UnfusedArenaBytes: p.Contrastive.UnfusedArenaBytes}
	if info.UnfusedArenaBytes > 0 {
		info.SavedBytes = info.UnfusedArenaBytes - info.ArenaBytes
	}
	for _, pr := range p.Programs {
		for _, k := range pr.Kernels {
			if k.Op != "contrastive_xent_fused" && k.Op != "soft_xent" {
				continue
			}
			rows := p.Buffers[k.Ins[0]].Type.Shape[0]
			row := ContrastiveLoss{Program: pr.Name, Kernel: k.Name, Op: k.Op, Rows: rows}
			if k.Op == "contrastive_xent_fused" {
				row.Tile = k.Attrs.Int("tile", 0)
				row.WorkspaceBytes, row.PerWorkerBytes = fusedWorkspace(p, &k)
			}
			info.Kernels = append(info.Kernels, row)
		}
	}
	return info
}

// fusedWorkspace mirrors backends/cpu's allocation for the fused kernel: a
// copy of the unit rows per tower when it normalises, about 60 bytes of
// state per row, and per worker two tiles (four with per-side masks, five
// with a guide) plus a column vector.
func fusedWorkspace(p *ir.Plan, k *ir.Kernel) (fixed, perWorker int64) {
	lay := ir.ContrastiveLayout(k.Attrs)
	t := p.Buffers[k.Ins[lay.A]].Type
	rows, d := int64(t.Shape[0]), int64(t.Shape[1])
	towers := int64(1)
	if lay.B >= 0 {
		towers = 2
	}
	if k.Attrs.Bool("normalize", false) {
		fixed += towers * rows * d * 4
	}
	fixed += rows * 61
	if h := int64(k.Attrs.Int("hard_k", 0)); h > 0 {
		fixed += rows * (h*4 + 4)
	}
	tile := min(int64(k.Attrs.Int("tile", 256)), rows)
	tiles := int64(2)
	if k.Attrs.Bool("guided", false) || k.Attrs.Int("hard_k", 0) > 0 {
		tiles += 2
	}
	if k.Attrs.Bool("guided", false) {
		tiles++
	}
	return fixed, tiles*tile*tile*4 + tile*4
}

func writeContrastive(w io.Writer, c *ContrastiveInfo) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "\ncontrastive  objective %s\n", c.Objective)
	for _, k := range c.Kernels {
		if k.Op == "contrastive_xent_fused" {
			fmt.Fprintf(w, "  loss: %s %s %s, %d rows, tiles of %d×%d similarities streamed with an online log-sum-exp and recomputed in the backward; workspace %s + %s per worker outside the arena\n",
				k.Program, k.Kernel, k.Op, k.Rows, k.Tile, k.Tile, compiler.HumanBytes(k.WorkspaceBytes), compiler.HumanBytes(k.PerWorkerBytes))
		} else {
			fmt.Fprintf(w, "  loss: %s %s %s over a stored %d×%d matrix (unfused)\n", k.Program, k.Kernel, k.Op, k.Rows, k.Rows)
		}
	}
	var sb strings.Builder
	if c.UnfusedArenaBytes > 0 {
		fmt.Fprintf(&sb, "  arena %s fused vs %s unfused: fuse-contrastive saves %s", compiler.HumanBytes(c.ArenaBytes),
			compiler.HumanBytes(c.UnfusedArenaBytes), compiler.HumanBytes(c.SavedBytes))
	} else {
		fmt.Fprintf(&sb, "  arena %s (no unfused plan recorded: fuse-contrastive did not run or fused nothing)", compiler.HumanBytes(c.ArenaBytes))
	}
	fmt.Fprintln(w, sb.String())
}
