package data

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/expc-dev/expc/schema"
)

// synthParams fills the defaults of the generator parameters that cannot be
// zero (Samples 2000, Centers 3, Dim 2). Noise is taken as given: the schema
// supplies its default, and 0 is a legitimate (noise-free) choice.
func synthParams(ds schema.Dataset) (samples, centers, dim int, err error) {
	samples, centers, dim = ds.Samples, ds.Centers, ds.Dim
	if samples == 0 {
		samples = 2000
	}
	if centers == 0 {
		centers = 3
	}
	if dim == 0 {
		dim = 2
	}
	switch {
	case samples < 2:
		return 0, 0, 0, fmt.Errorf("%s: samples must be at least 2, got %d", ds.Name, samples)
	case centers < 1 || dim < 1:
		return 0, 0, 0, fmt.Errorf("blobs: centers and dim must be positive, got %d and %d", centers, dim)
	case ds.Noise < 0 || math.IsNaN(ds.Noise):
		return 0, 0, 0, fmt.Errorf("%s: noise must be >= 0, got %v", ds.Name, ds.Noise)
	}
	return samples, centers, dim, nil
}

func synthMeta(ds schema.Dataset) (Info, error) {
	n, centers, dim, err := synthParams(ds)
	if err != nil {
		return Info{}, err
	}
	m := Info{Features: dim, Classes: centers}
	if ds.Name == "moons" {
		m.Features, m.Classes = 2, 2
	}
	e, err := evalCount(n, ds.EvalFraction)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %v", ds.Name, err)
	}
	m.TrainN, m.EvalN = n-e, e
	return m, nil
}

// loadSynthetic generates blobs or moons, splits and normalises them.
func loadSynthetic(ds schema.Dataset) (*Set, error) {
	m, err := synthMeta(ds)
	if err != nil {
		return nil, err
	}
	n := m.TrainN + m.EvalN
	var x []float32
	var y []int32
	if ds.Name == "moons" {
		x, y = moons(n, ds.Noise, uint64(ds.Seed))
	} else {
		x, y = blobs(n, m.Classes, m.Features, ds.Noise, uint64(ds.Seed))
	}
	s := &Set{Meta: m}
	if s.Train, s.Eval, err = splitRows(x, y, n, m.Features, ds.EvalFraction, uint64(ds.Seed)); err != nil {
		return nil, fmt.Errorf("%s: %v", ds.Name, err)
	}
	if ds.Normalize {
		s.Norm = standardise(&s.Train, &s.Eval, m.Features)
	}
	return s, nil
}

// blobs draws k centers uniformly in [-10,10]^dim, then n points (class i%k)
// around them with isotropic Gaussian noise of std noise.
func blobs(n, k, dim int, noise float64, seed uint64) ([]float32, []int32) {
	rng := rand.New(rand.NewPCG(seed, streamBlobs))
	centers := make([]float64, k*dim)
	for i := range centers {
		centers[i] = 20*rng.Float64() - 10
	}
	x, y := make([]float32, n*dim), make([]int32, n)
	for i := range n {
		c := i % k
		y[i] = int32(c)
		for j := range dim {
			x[i*dim+j] = float32(centers[c*dim+j] + noise*rng.NormFloat64())
		}
	}
	return x, y
}

// moons makes two interleaving half circles: n/2 points of class 0 on the
// upper arc (cos t, sin t), the rest of class 1 on the lower arc
// (1 - cos t, 0.5 - sin t), t evenly spaced in [0, π], plus Gaussian noise.
func moons(n int, noise float64, seed uint64) ([]float32, []int32) {
	rng := rand.New(rand.NewPCG(seed, streamMoons))
	x, y := make([]float32, 2*n), make([]int32, n)
	arc := func(i, m int) float64 {
		if m < 2 {
			return 0
		}
		return math.Pi * float64(i) / float64(m-1)
	}
	out := n / 2
	for i := range n {
		var a, b float64
		if i < out {
			t := arc(i, out)
			a, b = math.Cos(t), math.Sin(t)
		} else {
			t := arc(i-out, n-out)
			a, b = 1-math.Cos(t), 0.5-math.Sin(t)
			y[i] = 1
		}
		x[2*i] = float32(a + noise*rng.NormFloat64())
		x[2*i+1] = float32(b + noise*rng.NormFloat64())
	}
	return x, y
}
