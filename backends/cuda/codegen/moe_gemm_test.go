package codegen_test

import (
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/backends/cuda/kerneltest"
	"github.com/expc-dev/expc/backends/cuda/ptxcheck"
)

// TestMoEGemmMutantsFail: the expert GEMM template (moe_gemm.go) is checked
// on the emulator only as far as its cases would catch a wrong kernel. Each
// mutant here, a missing barrier (a race on the GPU), row tiles that skip
// an expert's partial last tile, or a bias gradient that drops the rows
// after the last group of four, must put moe_ffn_grad out of tolerance.
// The inputs are fixed (seed 11), so that the case's experts have row
// counts that show each mutant.
func TestMoEGemmMutantsFail(t *testing.T) {
	clang := ptxcheck.NeedClang(t, ptxcheck.Targets[0].Clang)
	dir := t.TempDir()
	rt := hostRuntime(t, clang, dir)
	const name = "moe_ffn_grad tanh odd sizes, an empty expert"
	var c kerneltest.Case
	for _, k := range kerneltest.Cases() {
		if k.Name == name {
			c = k
		}
	}
	if c.Op == "" {
		t.Fatalf("case %q is gone: pick another moe_ffn_grad case", name)
	}
	for what, m := range map[string][2]string{
		"barrier after staging": {"ldb, tid);\n    ex_sync();\n    if (colsum) {", "ldb, tid);\n    if (colsum) {"},
		"barrier after use":     {"ex_tile_fma<BM, BN, BK>(As, Bs, acc, tx, ty);\n    ex_sync();\n  }\n  ex_tile_store<EPI, ACT, BM, BN>(acc, E, C, C2,", "ex_tile_fma<BM, BN, BK>(As, Bs, acc, tx, ty);\n  }\n  ex_tile_store<EPI, ACT, BM, BN>(acc, E, C, C2,"},
		"partial row tiles":     {"if (m0 >= M) return;", "if (m0 + BM > M) return;"},
		"bias tail rows":        {"for (i32 q = p; k0 + q < K; q++)", "for (i32 q = p; false; q++)"},
	} {
		t.Run(what, func(t *testing.T) {
			mutated := false
			worst, bad := runOnHost(t, clang, rt, cpu.New(1), dir, 11, 0, c, func(src string) string {
				mutated = strings.Count(src, m[0]) == 1
				return strings.Replace(src, m[0], m[1], 1)
			})
			if !mutated {
				t.Fatal("the moe_gemm template changed: update the mutant")
			}
			if len(bad) == 0 {
				t.Errorf("with the mutant %q the expert GEMMs still matched (worst relative error %.3g)", what, worst)
			}
		})
	}
}
