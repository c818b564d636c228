package cpu

import "math"

// The exponential loops of the fused contrastive kernel, over one row of a
// similarity tile. AVX-512 versions (contrastive_amd64.s) when the CPU has
// it; the float64 loops below otherwise and as their reference.
//
//	expRowSum(s, a, shift)            Σ_j exp(a·s_j − shift)
//	expRowW(w, s, a, shift, c)        w_j = c·exp(a·s_j − shift); returns Σ_j w_j·s_j
//	expColSum(acc, s, a, shift)       acc_j += exp(a_j·s_j − shift_j)
//	expColW(w, dt, s, a, shift, c)    e = c_j·exp(a_j·s_j − shift_j); w_j += e; dt_j += e·s_j
//
// Masked entries hold −1e30 (maskedSim): times a positive temperature they
// give exp(−∞-ish) = 0 and 0·s stays finite.

// maskedSim marks an entry of a similarity tile that is in no denominator.
const maskedSim = -1e30

// useVecExp selects the AVX-512 loops; tests switch it off to compare.
var useVecExp = hasAVX512

func expRowSum(s []float32, a, shift float32) float64 {
	if useVecExp && len(s) > 0 {
		var acc [16]float32
		rowExpSumAVX512(&s[0], len(s), a, shift, &acc[0])
		return sumLanes(&acc)
	}
	var t float64
	for _, v := range s {
		t += expArg(a*v - shift)
	}
	return t
}

func expRowW(w, s []float32, a, shift, c float32) float64 {
	w = w[:len(s)]
	if useVecExp && len(s) > 0 {
		var acc [16]float32
		rowExpWAVX512(&w[0], &s[0], len(s), a, shift, c, &acc[0])
		return sumLanes(&acc)
	}
	var t float64
	for j, v := range s {
		e := c * float32(expArg(a*v-shift))
		w[j] = e
		t += float64(e) * float64(v)
	}
	return t
}

func expColSum(acc, s, a, shift []float32) {
	n := len(s)
	acc, a, shift = acc[:n], a[:n], shift[:n]
	if useVecExp && n > 0 {
		colExpSumAVX512(&s[0], &a[0], &shift[0], &acc[0], n)
		return
	}
	for j, v := range s {
		acc[j] += float32(expArg(a[j]*v - shift[j]))
	}
}

func expColW(w, dt, s, a, shift, c []float32) {
	n := len(s)
	w, dt, a, shift, c = w[:n], dt[:n], a[:n], shift[:n], c[:n]
	if useVecExp && n > 0 {
		colExpWAVX512(&w[0], &dt[0], &s[0], &a[0], &shift[0], &c[0], n)
		return
	}
	for j, v := range s {
		e := c[j] * float32(expArg(a[j]*v-shift[j]))
		w[j] += e
		dt[j] += e * v
	}
}

// expArg is exp with the same clamp as the vector code.
func expArg(x float32) float64 {
	return math.Exp(float64(min(max(x, -150), 150)))
}

func sumLanes(acc *[16]float32) float64 {
	var t float64
	for _, v := range acc {
		t += float64(v)
	}
	return t
}
