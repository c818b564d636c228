#include "textflag.h"

// AVX-512 inner loops of the fused contrastive kernel (contrastive_exp.go):
// exponentials of one row of a similarity tile, summed or turned into
// gradient weights. e^x is 2^k·p(r) with k = round(x·log2 e),
// r = x − k·ln2 (two-part ln2) and p the degree-7 Taylor polynomial, as in
// gemm's activations; inputs are clamped to [−150, 150] so that masked
// entries (−1e30 times a temperature) give exactly 0.

DATA cexp<>+0(SB)/4, $0x3f800000  // 1
DATA cexp<>+4(SB)/4, $0x3fb8aa3b  // log2(e)
DATA cexp<>+8(SB)/4, $0xbf318000  // -ln2hi
DATA cexp<>+12(SB)/4, $0x395e8083 // -ln2lo
DATA cexp<>+16(SB)/4, $0x3f000000 // 1/2!
DATA cexp<>+20(SB)/4, $0x3e2aaaab // 1/3!
DATA cexp<>+24(SB)/4, $0x3d2aaaab // 1/4!
DATA cexp<>+28(SB)/4, $0x3c088889 // 1/5!
DATA cexp<>+32(SB)/4, $0x3ab60b61 // 1/6!
DATA cexp<>+36(SB)/4, $0x39500d01 // 1/7!
DATA cexp<>+40(SB)/4, $0xc3160000 // -150
DATA cexp<>+44(SB)/4, $0x43160000 // 150
GLOBL cexp<>(SB), RODATA|NOPTR, $48

#define ONE Z31
#define LOG2E Z30
#define NLN2HI Z29
#define NLN2LO Z28
#define C2 Z27
#define C3 Z26
#define C4 Z25
#define C5 Z24
#define C6 Z23
#define C7 Z22
#define XLO Z21
#define XHI Z20

#define CONSTS \
	VBROADCASTSS cexp<>+0(SB), ONE \
	VBROADCASTSS cexp<>+4(SB), LOG2E \
	VBROADCASTSS cexp<>+8(SB), NLN2HI \
	VBROADCASTSS cexp<>+12(SB), NLN2LO \
	VBROADCASTSS cexp<>+16(SB), C2 \
	VBROADCASTSS cexp<>+20(SB), C3 \
	VBROADCASTSS cexp<>+24(SB), C4 \
	VBROADCASTSS cexp<>+28(SB), C5 \
	VBROADCASTSS cexp<>+32(SB), C6 \
	VBROADCASTSS cexp<>+36(SB), C7 \
	VBROADCASTSS cexp<>+40(SB), XLO \
	VBROADCASTSS cexp<>+44(SB), XHI

// X = e^X, with K and T as scratch.
#define EXP(X, K, T) \
	VMAXPS X, XLO, X \
	VMINPS X, XHI, X \
	VMULPS LOG2E, X, K \
	VRNDSCALEPS $8, K, K \
	VFMADD231PS NLN2HI, K, X \
	VFMADD231PS NLN2LO, K, X \
	VMOVAPS C7, T \
	VFMADD213PS C6, X, T \
	VFMADD213PS C5, X, T \
	VFMADD213PS C4, X, T \
	VFMADD213PS C3, X, T \
	VFMADD213PS C2, X, T \
	VFMADD213PS ONE, X, T \
	VFMADD213PS ONE, X, T \
	VSCALEFPS K, T, X

// K1 = all 16 lanes, or the low CX lanes when CX < 16.
#define LANES \
	MOVL $0xffff, BX \
	CMPQ CX, $16 \
	JAE 4(PC) \
	MOVL $1, BX \
	SHLL CX, BX \
	DECL BX \
	KMOVW BX, K1

// func rowExpSumAVX512(s *float32, n int, a, shift float32, acc *float32)
// acc[0:16] = lane sums of exp(a·s[j] − shift), j < n.
TEXT ·rowExpSumAVX512(SB), NOSPLIT, $0-32
	MOVQ s+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS a+16(FP), Z10
	VBROADCASTSS shift+20(FP), Z11
	MOVQ acc+24(FP), DI
	CONSTS
	VPXORD Z12, Z12, Z12

rsloop:
	TESTQ CX, CX
	JLE rsdone
	LANES
	VMOVUPS.Z (SI), K1, Z0
	VFMSUB213PS Z11, Z10, Z0
	EXP(Z0, Z1, Z2)
	VADDPS Z0, Z12, K1, Z12
	ADDQ $64, SI
	SUBQ $16, CX
	JMP rsloop

rsdone:
	VMOVUPS Z12, (DI)
	VZEROUPPER
	RET

// func rowExpWAVX512(w, s *float32, n int, a, shift, c float32, acc *float32)
// w[j] = c·exp(a·s[j] − shift); acc[0:16] = lane sums of w[j]·s[j].
TEXT ·rowExpWAVX512(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Z10
	VBROADCASTSS shift+28(FP), Z11
	VBROADCASTSS c+32(FP), Z13
	MOVQ acc+40(FP), DX
	CONSTS
	VPXORD Z12, Z12, Z12

rwloop:
	TESTQ CX, CX
	JLE rwdone
	LANES
	VMOVUPS.Z (SI), K1, Z3
	VMOVAPS Z3, Z0
	VFMSUB213PS Z11, Z10, Z0
	EXP(Z0, Z1, Z2)
	VMULPS Z13, Z0, Z0
	VMOVUPS Z0, K1, (DI)
	VFMADD231PS Z3, Z0, K1, Z12
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP rwloop

rwdone:
	VMOVUPS Z12, (DX)
	VZEROUPPER
	RET

// func colExpSumAVX512(s, a, shift, acc *float32, n int)
// acc[j] += exp(a[j]·s[j] − shift[j]), j < n.
TEXT ·colExpSumAVX512(SB), NOSPLIT, $0-40
	MOVQ s+0(FP), SI
	MOVQ a+8(FP), R8
	MOVQ shift+16(FP), R9
	MOVQ acc+24(FP), DI
	MOVQ n+32(FP), CX
	CONSTS

csloop:
	TESTQ CX, CX
	JLE csdone
	LANES
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z (R8), K1, Z10
	VMOVUPS.Z (R9), K1, Z11
	VFMSUB213PS Z11, Z10, Z0
	EXP(Z0, Z1, Z2)
	VMOVUPS.Z (DI), K1, Z3
	VADDPS Z0, Z3, Z3
	VMOVUPS Z3, K1, (DI)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, DI
	SUBQ $16, CX
	JMP csloop

csdone:
	VZEROUPPER
	RET

// func colExpWAVX512(w, dt, s, a, shift, c *float32, n int)
// e = c[j]·exp(a[j]·s[j] − shift[j]); w[j] += e; dt[j] += e·s[j].
TEXT ·colExpWAVX512(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), DI
	MOVQ dt+8(FP), DX
	MOVQ s+16(FP), SI
	MOVQ a+24(FP), R8
	MOVQ shift+32(FP), R9
	MOVQ c+40(FP), R10
	MOVQ n+48(FP), CX
	CONSTS

cwloop:
	TESTQ CX, CX
	JLE cwdone
	LANES
	VMOVUPS.Z (SI), K1, Z3
	VMOVUPS.Z (R8), K1, Z10
	VMOVUPS.Z (R9), K1, Z11
	VMOVAPS Z3, Z0
	VFMSUB213PS Z11, Z10, Z0
	EXP(Z0, Z1, Z2)
	VMOVUPS.Z (R10), K1, Z13
	VMULPS Z13, Z0, Z0
	VMOVUPS.Z (DI), K1, Z4
	VADDPS Z0, Z4, Z4
	VMOVUPS Z4, K1, (DI)
	VMOVUPS.Z (DX), K1, Z5
	VFMADD231PS Z3, Z0, Z5
	VMOVUPS Z5, K1, (DX)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R10
	ADDQ $64, DI
	ADDQ $64, DX
	SUBQ $16, CX
	JMP cwloop

cwdone:
	VZEROUPPER
	RET
