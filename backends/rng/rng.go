// Package rng is the counter-based random number generator that every expc
// backend uses, so that a seeded run initialises (and later draws dropout or
// noise) identically on the CPU and on a GPU. Each draw is a pure function of
// (seed, index): there is no state to carry between kernels or threads, and a
// parallel kernel can compute element i without knowing any other.
//
// # The exact formula
//
// A CUDA code generator reimplements this; keep the two in sync. All integer
// arithmetic is on uint64 and wraps modulo 2⁶⁴.
//
//	mix(z):                      // the splitmix64 finaliser
//	    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
//	    z = (z ^ (z >> 27)) * 0x94d049bb133111eb
//	    return z ^ (z >> 31)
//
//	Bits(seed, i)    = mix(mix(seed) + (i+1) * 0x9e3779b97f4a7c15)
//	Uniform(seed, i) = float32(Bits(seed, i) >> 40) * 2⁻²⁴          // in [0, 1), exact
//	Normal(seed, i)  = float32( sqrt(-2 ln u1) * cos(2π u2) )       // computed in float64
//	    where u1 = ((Bits(seed, 2i) >> 40) + 1) * 2⁻²⁴               // in (0, 1]: ln u1 is finite
//	          u2 =  (Bits(seed, 2i+1) >> 40)     * 2⁻²⁴               // in [0, 1)
//
// Bits is exactly element i+1 of the splitmix64 stream whose state starts at
// mix(seed); hashing the seed first keeps nearby seeds (1, 2, 3, ...) from
// producing shifted copies of one stream. Normal uses counters 2i and 2i+1, so
// Normal(seed, i) and Uniform(seed, j) draw on overlapping counters: use
// different seeds for different purposes.
//
// Normal is evaluated in float64 (log, sqrt, cos) and rounded once to
// float32. A CUDA implementation using double-precision log/sqrt/cos agrees to
// the last float32 bit except when the float64 results differ by an ulp across
// a float32 rounding boundary (probability about 2⁻²⁹ per draw).
package rng

import "math"

const (
	gamma = 0x9e3779b97f4a7c15 // 2⁶⁴/φ, splitmix64's increment
	inv24 = 1.0 / (1 << 24)
)

// Mix is the splitmix64 finaliser: a bijective 64-bit hash with full
// avalanche.
func Mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Bits returns 64 random bits for counter i of stream seed.
func Bits(seed, i uint64) uint64 { return Mix(Mix(seed) + (i+1)*gamma) }

// Uniform returns a float32 uniformly distributed in [0, 1) (multiples of
// 2⁻²⁴).
func Uniform(seed, i uint64) float32 { return float32(Bits(seed, i)>>40) * inv24 }

// Normal returns a standard normal float32 (Box–Muller over counters 2i and
// 2i+1). Its magnitude is bounded by sqrt(-2 ln 2⁻²⁴) ≈ 5.77.
func Normal(seed, i uint64) float32 {
	return normalFrom(Mix(seed), i)
}

func normalFrom(s, i uint64) float32 {
	u1 := float64(Mix(s+(2*i+1)*gamma)>>40+1) * inv24
	u2 := float64(Mix(s+(2*i+2)*gamma)>>40) * inv24
	return float32(math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2))
}

// FillNormal sets dst[j] = float32(float64(Normal(seed, offset+j)) * scale).
// It hoists the seed hash out of the loop; the values are those of Normal.
func FillNormal(dst []float32, seed, offset uint64, scale float64) {
	s := Mix(seed)
	for j := range dst {
		dst[j] = float32(float64(normalFrom(s, offset+uint64(j))) * scale)
	}
}

// FillUniform sets dst[j] = float32((2·float64(Uniform(seed, offset+j)) − 1) · bound),
// a uniform draw from [−bound, bound).
func FillUniform(dst []float32, seed, offset uint64, bound float64) {
	s := Mix(seed)
	for j := range dst {
		u := float64(float32(Mix(s+(offset+uint64(j)+1)*gamma)>>40) * inv24)
		dst[j] = float32((2*u - 1) * bound)
	}
}
