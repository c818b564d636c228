#include "textflag.h"

// func sgdAVX512(w, grad, v, wo, vo *float32, n int, m, wd, lr float32, nesterov bool)
// n is a multiple of 16. Each block of 16 is loaded before it is stored,
// so wo may be w and vo may be v (the optimizer updates in place).
TEXT ·sgdAVX512(SB), NOSPLIT, $0-61
	MOVQ w+0(FP), SI
	MOVQ grad+8(FP), DX
	MOVQ v+16(FP), R8
	MOVQ wo+24(FP), DI
	MOVQ vo+32(FP), R9
	MOVQ n+40(FP), CX
	VBROADCASTSS m+48(FP), Z0
	VBROADCASTSS wd+52(FP), Z1
	VBROADCASTSS lr+56(FP), Z2
	MOVBLZX nesterov+60(FP), AX
	XORQ BX, BX

loop:
	CMPQ BX, CX
	JGE  done
	VMOVUPS (SI)(BX*4), Z3      // w
	VMOVUPS (DX)(BX*4), Z4      // g
	VMOVUPS (R8)(BX*4), Z5      // v
	VFMADD231PS Z3, Z1, Z4      // g' = g + wd·w
	VFMADD213PS Z4, Z0, Z5      // v' = m·v + g'
	VMOVAPS Z5, Z6              // u = v'
	TESTQ AX, AX
	JZ   update
	VMOVAPS Z4, Z6
	VFMADD231PS Z5, Z0, Z6      // u = g' + m·v' (Nesterov)

update:
	VFNMADD231PS Z6, Z2, Z3     // w' = w − lr·u
	VMOVUPS Z3, (DI)(BX*4)
	VMOVUPS Z5, (R9)(BX*4)
	ADDQ $16, BX
	JMP  loop

done:
	VZEROUPPER
	RET
