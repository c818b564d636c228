package codegen_test

import "testing"

// TestMoEGemmMutantsFail: the expert GEMM template (moe_gemm.go) is checked
// on the emulator only as far as its cases would catch a wrong kernel. Each
// mutant here, a missing barrier (a race on the GPU), row tiles that skip
// an expert's partial last tile, or a bias gradient that drops the rows
// after the last group of four, must put moe_ffn_grad out of tolerance.
// The inputs are fixed (seed 11), so that the case's experts have row
// counts that show each mutant.
func TestMoEGemmMutantsFail(t *testing.T) {
	mutantsFail(t, "moe_ffn_grad tanh odd sizes, an empty expert", "the moe_gemm template", map[string][2]string{
		"barrier after staging": {"ldb, tid);\n    ex_sync();\n    if (colsum) {", "ldb, tid);\n    if (colsum) {"},
		"barrier after use":     {"ex_tile_fma<BM, BN, BK>(As, Bs, acc, tx, ty);\n    ex_sync();\n  }\n  ex_tile_store<EPI, ACT, BM, BN>(acc, E, C, C2,", "ex_tile_fma<BM, BN, BK>(As, Bs, acc, tx, ty);\n  }\n  ex_tile_store<EPI, ACT, BM, BN>(acc, E, C, C2,"},
		"partial row tiles":     {"if (m0 >= M) return;", "if (m0 + BM > M) return;"},
		"bias tail rows":        {"for (i32 q = p; k0 + q < K; q++)", "for (i32 q = p; false; q++)"},
	})
}
