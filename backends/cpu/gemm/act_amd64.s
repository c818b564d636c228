#include "textflag.h"

// AVX-512 versions of the activations in act.go, same formulas (up to FMA
// rounding). Used for the GEMM epilogue and the slice helpers.

// Constants, broadcast into registers at entry.
DATA actc<>+0(SB)/4, $0x3f800000  // 1
DATA actc<>+4(SB)/4, $0x3fb8aa3b  // log2(e)
DATA actc<>+8(SB)/4, $0xbf318000  // -ln2hi
DATA actc<>+12(SB)/4, $0x395e8083 // -ln2lo
DATA actc<>+16(SB)/4, $0x3f000000 // 1/2!
DATA actc<>+20(SB)/4, $0x3e2aaaab // 1/3!
DATA actc<>+24(SB)/4, $0x3d2aaaab // 1/4!
DATA actc<>+28(SB)/4, $0x3c088889 // 1/5!
DATA actc<>+32(SB)/4, $0x3ab60b61 // 1/6!
DATA actc<>+36(SB)/4, $0x39500d01 // 1/7!
DATA actc<>+40(SB)/4, $0x37d00d01 // 1/8!
DATA actc<>+44(SB)/4, $0xc3160000 // -150: exp clamp (keeps ±Inf out of the range reduction)
DATA actc<>+48(SB)/4, $0x43160000 // 150
DATA actc<>+52(SB)/4, $0x80000000 // sign bit
DATA actc<>+56(SB)/4, $0x3fcc422a // 2·√(2/π)
DATA actc<>+60(SB)/4, $0x3d372713 // 0.044715
DATA actc<>+64(SB)/4, $0x3e095d4f // 3·0.044715
DATA actc<>+68(SB)/4, $0x40000000 // 2
DATA actc<>+72(SB)/4, $0xc0000000 // -2
DATA actc<>+76(SB)/4, $0x41100000 // 9: tanh(9) rounds to 1
DATA actc<>+80(SB)/4, $0xc1200000 // -10: GELU's σ saturates beyond ±10
DATA actc<>+84(SB)/4, $0x41200000 // 10
DATA actc<>+88(SB)/4, $0xc2a00000 // -80: sigmoid' input clamp
GLOBL actc<>(SB), RODATA|NOPTR, $92

// Register plan: Z16-Z31 constants, Z15 zero, Z0 value, Z1 pre-activation,
// Z2-Z7 temporaries, K1 column mask, K2 scratch mask.
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
#define C8 Z21
#define XLO Z20
#define XHI Z19
#define SIGN Z18
#define GELU2C Z17
#define GELUA Z16
#define ZERO Z15

// X = round(X·log2e) into K, X = X - K·ln2 (|X| ≤ ln2/2 afterwards).
#define REDUCE(X, K) \
	VMULPS LOG2E, X, K \
	VRNDSCALEPS $8, K, K \
	VFMADD231PS NLN2HI, K, X \
	VFMADD231PS NLN2LO, K, X

// X = e^X. Clamping keeps NaN (the min/max operand order returns X).
#define EXP(X, K, T) \
	VMAXPS X, XLO, X \
	VMINPS X, XHI, X \
	REDUCE(X, K) \
	VMOVAPS C7, T \
	VFMADD213PS C6, X, T \
	VFMADD213PS C5, X, T \
	VFMADD213PS C4, X, T \
	VFMADD213PS C3, X, T \
	VFMADD213PS C2, X, T \
	VFMADD213PS ONE, X, T \
	VFMADD213PS ONE, X, T \
	VSCALEFPS K, T, X

// X = e^X - 1 for -18 ≤ X ≤ 0, as 2^k·(e^r - 1) + (2^k - 1).
#define EXPM1(X, K, T, S) \
	REDUCE(X, K) \
	VMOVAPS C8, T \
	VFMADD213PS C7, X, T \
	VFMADD213PS C6, X, T \
	VFMADD213PS C5, X, T \
	VFMADD213PS C4, X, T \
	VFMADD213PS C3, X, T \
	VFMADD213PS C2, X, T \
	VFMADD213PS ONE, X, T \
	VMULPS X, T, T \
	VSCALEFPS K, ONE, S \
	VSUBPS ONE, S, X \
	VFMADD231PS T, S, X

// Y = 1/(1 + e^-X) (X preserved).
#define SIGMOID(X, Y, K, T) \
	VPXORD SIGN, X, Y \
	EXP(Y, K, T) \
	VADDPS ONE, Y, Y \
	VDIVPS Y, ONE, Y

// Y = tanh(X) = sign(X)·(-t/(t+2)), t = expm1(-2|X|) (X preserved).
#define TANH(X, Y, K, T, S) \
	VPANDND X, SIGN, Y \
	VBROADCASTSS actc<>+76(SB), T \
	VMINPS Y, T, Y \
	VMULPS.BCST actc<>+72(SB), Y, Y \
	EXPM1(Y, K, T, S) \
	VADDPS.BCST actc<>+68(SB), Y, T \
	VDIVPS T, Y, Y \
	VPANDND Y, SIGN, Y \
	VPANDD X, SIGN, T \
	VPORD T, Y, Y

// S = σ(2u), E = e^(-2u), 2u = 2√(2/π)(X + 0.044715X³), X2 = X² (X preserved).
#define GELUSIG(X, S, E, X2, K, T) \
	VMULPS X, X, X2 \
	VMULPS GELUA, X2, E \
	VFMADD213PS X, X, E \
	VMULPS GELU2C, E, E \
	VPXORD SIGN, E, E \
	EXP(E, K, T) \
	VADDPS ONE, E, S \
	VDIVPS S, ONE, S

// func actAVX512(op int, c *float32, ldc, rows, cols int, bias, pre *float32)
//
// For each of rows rows of cols elements (ldc apart) at c:
//	v = c[j] (+ bias[j] if bias != nil)
//	c[j] = act(v)                   if op < 8 (op = act)
//	c[j] = v·act'(pre[j])           if op ≥ 8 (op = act + 8; pre also ldc apart)
TEXT ·actAVX512(SB), NOSPLIT, $0-56
	MOVQ op+0(FP), AX
	MOVQ c+8(FP), DI
	MOVQ ldc+16(FP), R8
	SHLQ $2, R8
	MOVQ rows+24(FP), R9
	MOVQ cols+32(FP), R10
	MOVQ bias+40(FP), R11
	MOVQ pre+48(FP), R12
	TESTQ R9, R9
	JLE done
	TESTQ R10, R10
	JLE done

	VBROADCASTSS actc<>+0(SB), ONE
	VBROADCASTSS actc<>+4(SB), LOG2E
	VBROADCASTSS actc<>+8(SB), NLN2HI
	VBROADCASTSS actc<>+12(SB), NLN2LO
	VBROADCASTSS actc<>+16(SB), C2
	VBROADCASTSS actc<>+20(SB), C3
	VBROADCASTSS actc<>+24(SB), C4
	VBROADCASTSS actc<>+28(SB), C5
	VBROADCASTSS actc<>+32(SB), C6
	VBROADCASTSS actc<>+36(SB), C7
	VBROADCASTSS actc<>+40(SB), C8
	VBROADCASTSS actc<>+44(SB), XLO
	VBROADCASTSS actc<>+48(SB), XHI
	VBROADCASTSS actc<>+52(SB), SIGN
	VBROADCASTSS actc<>+56(SB), GELU2C
	VBROADCASTSS actc<>+60(SB), GELUA
	VPXORD ZERO, ZERO, ZERO

	// K3 = mask of the last, partial vector of a row (cols mod 16 lanes).
	MOVQ R10, CX
	ANDQ $15, CX
	MOVL $1, BX
	SHLL CX, BX
	DECL BX
	KMOVW BX, K3
	MOVL $0xffff, BX
	KMOVW BX, K4

row:
	MOVQ DI, SI
	MOVQ R11, R13
	MOVQ R12, R14
	MOVQ R10, CX

col:
	KMOVW K4, K1
	CMPQ CX, $16
	JAE loaded
	KMOVW K3, K1

loaded:
	VMOVUPS.Z (SI), K1, Z0
	TESTQ R13, R13
	JZ nobias
	VMOVUPS.Z (R13), K1, Z2
	VADDPS Z2, Z0, Z0
	ADDQ $64, R13

nobias:
	CMPQ AX, $8
	JB forward
	VMOVUPS.Z (R14), K1, Z1
	ADDQ $64, R14
	CMPQ AX, $9
	JEQ grelu
	CMPQ AX, $10
	JEQ ggelu
	CMPQ AX, $11
	JEQ gtanh
	CMPQ AX, $12
	JEQ gsigmoid
	JMP store

forward:
	CMPQ AX, $1
	JEQ relu
	CMPQ AX, $2
	JEQ gelu
	CMPQ AX, $3
	JEQ tanh
	CMPQ AX, $4
	JEQ sigmoid
	JMP store

relu:
	VMAXPS Z0, ZERO, Z0
	JMP store

gelu:
	GELUSIG(Z0, Z2, Z6, Z3, Z4, Z5)
	VMULPS Z2, Z0, Z0
	JMP store

tanh:
	TANH(Z0, Z2, Z3, Z4, Z5)
	VMOVAPS Z2, Z0
	JMP store

sigmoid:
	SIGMOID(Z0, Z2, Z3, Z4)
	VMOVAPS Z2, Z0
	JMP store

grelu:
	VCMPPS $0x1e, ZERO, Z1, K2 // pre > 0 (ordered: NaN gives 0)
	VMOVAPS.Z Z0, K2, Z0
	JMP store

ggelu:
	// σ + 2√(2/π)·x·σ(1-σ)·(1 + 3·0.044715x²), x clamped to ±10 as in act.go
	VBROADCASTSS actc<>+80(SB), Z8
	VMAXPS Z1, Z8, Z1
	VBROADCASTSS actc<>+84(SB), Z8
	VMINPS Z1, Z8, Z1
	// σ(1-σ) = e·σ²: 1-σ would cancel.
	GELUSIG(Z1, Z2, Z6, Z3, Z4, Z5)
	VMULPS Z2, Z6, Z6
	VMULPS Z2, Z6, Z6
	VMULPS Z1, Z6, Z6
	VMOVAPS ONE, Z7
	VFMADD231PS.BCST actc<>+64(SB), Z3, Z7
	VMULPS Z7, Z6, Z6
	VFMADD231PS GELU2C, Z6, Z2
	VMULPS Z2, Z0, Z0
	JMP store

gtanh:
	TANH(Z1, Z2, Z3, Z4, Z5)
	VFNMADD213PS ONE, Z2, Z2
	VMULPS Z2, Z0, Z0
	JMP store

gsigmoid:
	// σ(1-σ) = e·σ² with e = e^-x: 1-σ would cancel. x ≥ -80 as in act.go.
	VBROADCASTSS actc<>+88(SB), Z8
	VMAXPS Z1, Z8, Z1
	VPXORD SIGN, Z1, Z6
	EXP(Z6, Z3, Z4)
	VADDPS ONE, Z6, Z2
	VDIVPS Z2, ONE, Z2
	VMULPS Z2, Z6, Z6
	VMULPS Z2, Z6, Z6
	VMULPS Z6, Z0, Z0

store:
	VMOVUPS Z0, K1, (SI)
	ADDQ $64, SI
	SUBQ $16, CX
	JG col

	ADDQ R8, DI
	TESTQ R12, R12
	JZ nopre
	ADDQ R8, R12

nopre:
	DECQ R9
	JNZ row

done:
	VZEROUPPER
	RET
