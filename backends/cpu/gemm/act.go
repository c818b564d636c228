package gemm

import "math"

// Act selects an element-wise activation. Its formulas live in this file only
// so that the fused GEMM epilogue and the rest of the CPU backend agree.
type Act uint8

const (
	None    Act = iota // identity
	ReLU               // max(x, 0)
	GELU               // tanh approximation: x/2·(1+tanh(√(2/π)(x+0.044715x³)))
	Tanh               // tanh(x)
	Sigmoid            // 1/(1+e^-x)
)

var actNames = [...]string{"None", "ReLU", "GELU", "Tanh", "Sigmoid"}

func (a Act) String() string {
	if int(a) < len(actNames) {
		return actNames[a]
	}
	return "Act(?)"
}

const (
	geluC = 0.7978845608028654 // √(2/π)
	geluA = 0.044715
)

// ActForward returns act(x).
func ActForward(act Act, x float32) float32 {
	switch act {
	case ReLU:
		// max(x, 0) as the vector code computes it: NaN and -0 pass through.
		if x < 0 {
			return 0
		}
		return x
	case GELU:
		// ½x(1+tanh u) = x·σ(2u): one exp and no cancellation for x ≪ 0.
		return x / (1 + expf(geluArg(x)))
	case Tanh:
		return tanhf(x)
	case Sigmoid:
		return sigmoid(x)
	}
	return x
}

// ActGrad returns act'(pre), the derivative at the pre-activation value.
func ActGrad(act Act, pre float32) float32 {
	switch act {
	case ReLU:
		if pre > 0 {
			return 1
		}
		return 0
	case GELU:
		// d/dx x·σ(2u) = σ + 2x·σ(1-σ)·u', with σ(1-σ) = e·σ² for
		// e = e^(-2u) (1-σ would cancel). Beyond |x| = 10, σ is 0 or 1 to
		// float32 precision, and clamping keeps x³ from overflowing.
		x := min(max(pre, -10), 10)
		e := expf(geluArg(x))
		s := 1 / (1 + e)
		return s + 2*geluC*x*(e*s*s)*(1+3*geluA*x*x)
	case Tanh:
		t := tanhf(pre)
		return 1 - t*t
	case Sigmoid:
		// σ(1-σ) = e·σ² for e = e^-x, which does not cancel for x ≫ 0.
		// Clamping keeps e finite; the result there is below 2e-35 anyway.
		e := expf(-max(pre, -80))
		s := 1 / (1 + e)
		return e * s * s
	}
	return 1
}

// geluArg returns -2u = -2√(2/π)(x + 0.044715x³), so GELU(x) = x/(1+e^-2u).
func geluArg(x float32) float32 {
	return -2 * geluC * (x + geluA*x*x*x)
}

// ApplyAct sets x[i] = act(x[i]), vectorised where the CPU allows.
func ApplyAct(act Act, x []float32) {
	if act == None || len(x) == 0 {
		return
	}
	if actVec != nil {
		actVec(int(act), &x[0], len(x), 1, len(x), nil, nil)
		return
	}
	applyActGo(act, x, nil)
}

// MulActGrad sets g[i] *= act'(pre[i]), the backward step through act.
func MulActGrad(act Act, g, pre []float32) {
	pre = pre[:len(g)]
	if act == None || len(g) == 0 {
		return
	}
	if actVec != nil {
		actVec(int(act)+8, &g[0], len(g), 1, len(g), nil, &pre[0])
		return
	}
	mulActGradGo(act, g, pre)
}

// actVec is the vectorised form of applyActGo/mulActGradGo over a rows x cols
// tile (ld apart) when the CPU has one: op = act, or act+8 for the gradient;
// bias (len cols) is added first when non-nil. Set by the dispatch code.
var actVec func(op int, c *float32, ld, rows, cols int, bias, pre *float32)

// applyActGo is the portable ApplyAct, adding bias (if non-nil) first.
func applyActGo(act Act, x, bias []float32) {
	if bias != nil {
		bias = bias[:len(x)]
		for i := range x {
			x[i] += bias[i]
		}
	}
	switch act {
	case None:
	case ReLU:
		for i, v := range x {
			if v < 0 {
				x[i] = 0
			}
		}
	default:
		for i, v := range x {
			x[i] = ActForward(act, v)
		}
	}
}

// mulActGradGo is the portable MulActGrad.
func mulActGradGo(act Act, g, pre []float32) {
	pre = pre[:len(g)]
	switch act {
	case None:
	case ReLU:
		for i, p := range pre {
			if !(p > 0) {
				g[i] = 0
			}
		}
	default:
		for i, p := range pre {
			g[i] *= ActGrad(act, p)
		}
	}
}

// sigmoid is accurate for all x: for x ≪ 0, e^-x overflows to +Inf and the
// result to 0, the correctly rounded float32 answer below -104.
func sigmoid(x float32) float32 {
	return 1 / (1 + expf(-x))
}

// tanhf computes tanh via expm1 so small |x| keeps full relative precision.
func tanhf(x float32) float32 {
	ax := x
	if ax < 0 {
		ax = -ax
	}
	if !(ax < 9) { // tanh(9) rounds to 1 in float32; also passes NaN through
		if ax != ax {
			return x
		}
		return math.Float32frombits(0x3f800000 | math.Float32bits(x)&0x80000000)
	}
	t := expm1f(-2 * ax) // in (-1, 0]
	r := -t / (t + 2)
	if x < 0 {
		return -r
	}
	return r
}

const (
	log2e = 1.44269504088896341
	ln2hi = 0.693359375 // few mantissa bits, so k·ln2hi is exact
	ln2lo = -2.12194440e-4
	// round is 1.5·2²³: adding and subtracting it rounds a float32 to an
	// integer (ties to even) for |x| < 2²².
	round = 12582912
)

// expf returns e^x in float32 (about 1 ulp); results below the normal range
// flush to 0.
func expf(x float32) float32 {
	if !(x > -87.33654) { // also catches NaN
		if x != x {
			return x
		}
		return 0
	}
	if x > 88.37626 { // 2^k would overflow; rare, so take the slow path
		return float32(math.Exp(float64(x)))
	}
	kf := (x*log2e + round) - round
	r := (x - kf*ln2hi) - kf*ln2lo
	// e^r for |r| ≤ ln2/2: Taylor series through r^7 (error < 6e-9).
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return p * math.Float32frombits(uint32(int32(kf)+127)<<23)
}

// expm1f returns e^x - 1 for -18 ≤ x ≤ 0 (the range tanhf needs), keeping
// relative precision near 0.
func expm1f(x float32) float32 {
	kf := (x*log2e + round) - round
	r := (x - kf*ln2hi) - kf*ln2lo
	// e^r - 1 for |r| ≤ ln2/2: Taylor series through r^8.
	q := r * (1 + r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320))))))))
	if kf == 0 {
		return q
	}
	s := math.Float32frombits(uint32(int32(kf)+127) << 23)
	return s*q + (s - 1)
}
