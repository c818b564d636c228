package pipeline

import (
	"slices"

	"github.com/expc-dev/expc/compiler"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/lowering"
)

// recordUnfusedArena compiles a contrastive plan a second time without
// fuse-contrastive and records that plan's arena, so that `expc explain`
// can show what the fusion saves. It changes nothing when the pass did not
// fuse anything (or the second build fails, which the first would have too).
func recordUnfusedArena(in compiler.Input, cfg lowering.Config, plan *ir.Plan) {
	if plan.Contrastive == nil || !hasFusedContrastive(plan) {
		return
	}
	mod, unfused, diags := compiler.Compile(in)
	if diags.HasErrors() {
		return
	}
	cfg.Disabled = append(slices.Clone(cfg.Disabled), "fuse-contrastive")
	cfg.Dump, cfg.DumpAfter = nil, nil
	if _, err := lowering.Run(&lowering.Unit{Module: mod, Plan: unfused}, cfg); err != nil {
		return
	}
	plan.Contrastive.UnfusedArenaBytes = unfused.Memory.ArenaBytes
}

func hasFusedContrastive(p *ir.Plan) bool {
	for _, pr := range p.Programs {
		for _, k := range pr.Kernels {
			if k.Op == "contrastive_xent_fused" {
				return true
			}
		}
	}
	return false
}
