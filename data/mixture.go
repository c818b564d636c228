package data

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/expc-dev/expc/schema"
)

// Regression data from a known softmax-gated mixture of linear Gaussian
// experts (dataset "mixture_regression"), the statistical setting of the
// seed's MoE papers:
//
//	x ~ N(0, I_dim),  z ~ softmax(Wx + b),  y | x, z ~ N(a_zᵀx + c_z, σ_z²)
//
// An example's features are x followed by y (the last column, read by the
// gaussian_moe model as its target); its label is the expert z that drew it.
// The truth comes from the seed: W ~ N(0, 2²) (gates that are soft in a
// band of x, hard elsewhere), b ~ N(0, ½²), a_z ~ N(0, 1), intercepts c_z
// spaced 2 apart, σ_z = noise·(0.75 + ½u), u ~ U(0, 1). Features are not
// normalised: the model sees the data on the scale the truth is defined on.

// Mixture is a softmax-gated mixture of linear Gaussian experts.
type Mixture struct {
	Dim, Experts int
	GateW        []float64 // [Experts, Dim]
	GateB        []float64 // [Experts]
	A            []float64 // [Experts, Dim]
	C            []float64 // [Experts]
	Sigma        []float64 // [Experts]
}

const (
	streamMixture = 0x6d6978 // "mix"
	streamTruth   = 0x7472757468
)

// TrueMixture is the mixture a mixture_regression spec draws from.
func TrueMixture(ds schema.Dataset) (*Mixture, error) {
	_, dim, k, err := mixtureParams(ds)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(ds.Seed), streamTruth))
	m := &Mixture{Dim: dim, Experts: k, GateW: make([]float64, k*dim), GateB: make([]float64, k),
		A: make([]float64, k*dim), C: make([]float64, k), Sigma: make([]float64, k)}
	for e := 0; e < k; e++ {
		for j := 0; j < dim; j++ {
			m.GateW[e*dim+j] = 2 * rng.NormFloat64()
			m.A[e*dim+j] = rng.NormFloat64()
		}
		m.GateB[e] = 0.5 * rng.NormFloat64()
		m.C[e] = 2 * (float64(e) - float64(k-1)/2)
		m.Sigma[e] = ds.Noise * (0.75 + 0.5*rng.Float64())
	}
	return m, nil
}

// Gate is softmax(Wx + b).
func (m *Mixture) Gate(x []float64) []float64 {
	g := make([]float64, m.Experts)
	mx := math.Inf(-1)
	for e := range g {
		g[e] = m.GateB[e]
		for j, v := range x {
			g[e] += m.GateW[e*m.Dim+j] * v
		}
		mx = math.Max(mx, g[e])
	}
	var s float64
	for e := range g {
		g[e] = math.Exp(g[e] - mx)
		s += g[e]
	}
	for e := range g {
		g[e] /= s
	}
	return g
}

// NLL is −log p(y | x) under the mixture.
func (m *Mixture) NLL(x []float64, y float64) float64 {
	g := m.Gate(x)
	var p float64
	for e := 0; e < m.Experts; e++ {
		mu := m.C[e]
		for j, v := range x {
			mu += m.A[e*m.Dim+j] * v
		}
		s := m.Sigma[e]
		p += g[e] * math.Exp(-(y-mu)*(y-mu)/(2*s*s)) / (s * math.Sqrt(2*math.Pi))
	}
	return -math.Log(p)
}

// OracleNLL is the mean NLL of the true mixture on a split of its data: the
// best any model can do there.
func (m *Mixture) OracleNLL(s Split) float64 {
	w := m.Dim + 1
	x := make([]float64, m.Dim)
	var total float64
	for i := range s.N {
		for j := range x {
			x[j] = float64(s.X[i*w+j])
		}
		total += m.NLL(x, float64(s.X[i*w+m.Dim]))
	}
	return total / float64(max(s.N, 1))
}

func mixtureParams(ds schema.Dataset) (n, dim, k int, err error) {
	n, dim, k = ds.Samples, ds.Dim, ds.Experts
	if n == 0 {
		n = 8000
	}
	if dim == 0 {
		dim = 2
	}
	if k == 0 {
		k = 2
	}
	switch {
	case n < 2:
		return 0, 0, 0, fmt.Errorf("mixture_regression: samples must be at least 2, got %d", n)
	case !(ds.Noise > 0):
		return 0, 0, 0, fmt.Errorf("mixture_regression: noise must be > 0, got %v", ds.Noise)
	}
	return n, dim, k, nil
}

func mixtureMeta(ds schema.Dataset) (Info, error) {
	n, dim, k, err := mixtureParams(ds)
	if err != nil {
		return Info{}, err
	}
	e, err := evalCount(n, ds.EvalFraction)
	if err != nil {
		return Info{}, fmt.Errorf("mixture_regression: %v", err)
	}
	return Info{Features: dim + 1, Classes: max(k, 2), TrainN: n - e, EvalN: e}, nil
}

func loadMixture(ds schema.Dataset) (*Set, error) {
	meta, err := mixtureMeta(ds)
	if err != nil {
		return nil, err
	}
	m, err := TrueMixture(ds)
	if err != nil {
		return nil, err
	}
	n := meta.TrainN + meta.EvalN
	w := m.Dim + 1
	rng := rand.New(rand.NewPCG(uint64(ds.Seed), streamMixture))
	x, y := make([]float32, n*w), make([]int32, n)
	xv := make([]float64, m.Dim)
	for i := range n {
		for j := range xv {
			xv[j] = rng.NormFloat64()
			x[i*w+j] = float32(xv[j])
			xv[j] = float64(x[i*w+j]) // the model sees float32 inputs
		}
		g := m.Gate(xv)
		u, z := rng.Float64(), 0
		for z < m.Experts-1 && u >= g[z] {
			u -= g[z]
			z++
		}
		mu := m.C[z]
		for j, v := range xv {
			mu += m.A[z*m.Dim+j] * v
		}
		x[i*w+m.Dim] = float32(mu + m.Sigma[z]*rng.NormFloat64())
		y[i] = int32(z)
	}
	s := &Set{Meta: meta}
	if s.Train, s.Eval, err = splitRows(x, y, n, w, ds.EvalFraction, uint64(ds.Seed)); err != nil {
		return nil, fmt.Errorf("mixture_regression: %v", err)
	}
	return s, nil
}
