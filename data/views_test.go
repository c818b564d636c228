package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/expc-dev/expc/schema"
)

// imageSplit is n random 8×8 "images" (standardised with mean 0.5, std
// 0.25) with labels i%3.
func imageSplit(n int) (Split, Norm) {
	s := Split{X: make([]float32, n*64), Y: make([]int32, n), N: n}
	for i := range n {
		s.Y[i] = int32(i % 3)
		for j := range 64 {
			u := 0.5 + 0.5*math.Sin(float64(i)*1.3+float64(j)*0.7+float64(i*j)*0.01)
			s.X[i*64+j] = (float32(u) - 0.5) / 0.25
		}
	}
	return s, Norm{Mean: []float32{0.5}, Std: []float32{0.25}}
}

var defaultViews = schema.Views{Pairing: "augment", Crop: 2, Flip: true, Erase: 0.5, Brightness: 0.3, Contrast: 0.3, Noise: 0.05, Seed: 3}

// TestViewsReproducible: a step's rows depend only on the step, not on the
// order steps are filled in; the prefetcher gives the same rows.
func TestViewsReproducible(t *testing.T) {
	s, norm := imageSplit(40)
	v, err := NewViews(s, 64, 8, true, 1, defaultViews, norm)
	if err != nil {
		t.Fatal(err)
	}
	fill := func(step int) ([]float32, []int32, []int32) {
		x, y, ids := make([]float32, v.Rows()*64), make([]int32, v.Rows()), make([]int32, v.Rows())
		v.Fill(step, x, y, ids)
		return x, y, ids
	}
	x7, y7, i7 := fill(7)
	fill(2)
	fill(30)
	x7b, y7b, i7b := fill(7)
	if !slices.Equal(x7, x7b) || !slices.Equal(y7, y7b) || !slices.Equal(i7, i7b) {
		t.Fatal("step 7 differs when filled again")
	}
	// Any number of workers gives Fill's rows (3 splits the batch of 8
	// unevenly, 20 is more workers than examples); step 5 starts an epoch.
	for _, workers := range []int{1, 3, 8, 20} {
		p := v.Prefetcher(4, workers)
		p.Next()
		x5, y5, i5 := fill(5)
		if px, py := p.Next(); !slices.Equal(px, x5) || !slices.Equal(py, y5) || !slices.Equal(p.IDs(), i5) {
			t.Fatalf("%d workers: the prefetcher's step 5 differs from Fill's", workers)
		}
		p.Next()
		if px, py := p.Next(); !slices.Equal(px, x7) || !slices.Equal(py, y7) || !slices.Equal(p.IDs(), i7) {
			t.Fatalf("%d workers: the prefetcher's step 7 differs from Fill's", workers)
		}
		p.Close()
		p.Close() // a second Close does nothing
	}
}

// TestViewsPairs: the two views of a row come from the same example (same
// label and id), differ from each other, and stay on the image scale.
func TestViewsPairs(t *testing.T) {
	s, norm := imageSplit(40)
	v, err := NewViews(s, 64, 8, true, 1, defaultViews, norm)
	if err != nil {
		t.Fatal(err)
	}
	x, y, ids := make([]float32, 16*64), make([]int32, 16), make([]int32, 16)
	v.Fill(3, x, y, ids)
	for i := range 8 {
		if y[i] != y[i+8] || ids[i] != ids[i+8] || y[i] != s.Y[ids[i]] {
			t.Fatalf("row %d: labels %d/%d ids %d/%d", i, y[i], y[i+8], ids[i], ids[i+8])
		}
		if slices.Equal(x[i*64:(i+1)*64], x[(i+8)*64:(i+9)*64]) {
			t.Errorf("row %d: both views are identical", i)
		}
	}
	for _, val := range x {
		if u := val*0.25 + 0.5; u < -1e-6 || u > 1+1e-6 || math.IsNaN(float64(u)) {
			t.Fatalf("augmented pixel %g is off the [0,1] scale", u)
		}
	}
	// Without augmentation both views are the example itself.
	plain := schema.Views{Pairing: "augment"}
	v, _ = NewViews(s, 64, 8, false, 1, plain, norm)
	v.Fill(0, x, y, ids)
	for i := range 8 {
		for j := range 64 {
			if d := math.Abs(float64(x[i*64+j] - s.X[i*64+j])); d > 1e-5 || x[(i+8)*64+j] != x[i*64+j] {
				t.Fatalf("row %d: un-augmented views differ from the example", i)
			}
		}
	}
}

// TestViewsSameClass: the second view is a different example of the same class.
func TestViewsSameClass(t *testing.T) {
	s, norm := imageSplit(40)
	cfg := schema.Views{Pairing: "same_class"}
	v, err := NewViews(s, 64, 10, true, 1, cfg, norm)
	if err != nil {
		t.Fatal(err)
	}
	x, y, ids := make([]float32, 20*64), make([]int32, 20), make([]int32, 20)
	for step := range 8 {
		v.Fill(step, x, y, ids)
		for i := range 10 {
			second := x[(i+10)*64 : (i+11)*64]
			var other = -1
			for e := range s.N {
				if d := maxDiff(second, s.X[e*64:(e+1)*64]); d < 1e-5 {
					other = e
				}
			}
			if other < 0 || other == int(ids[i]) || s.Y[other] != s.Y[ids[i]] {
				t.Fatalf("step %d row %d: second view is example %d, anchor %d (labels %d)", step, i, other, ids[i], s.Y[ids[i]])
			}
		}
	}
	// Four goroutines draw the same partners as Fill.
	p := v.Prefetcher(7, 4)
	defer p.Close()
	if px, _ := p.Next(); !slices.Equal(px, x) || !slices.Equal(p.IDs(), ids) {
		t.Fatal("the prefetcher's step 7 differs from Fill's")
	}
}

func maxDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// BenchmarkViewPrefetcher: SimCLR steps (batch 512, two views of 28×28
// images, every augmentation on) made by 1, 2 and 4 goroutines, as
// examples per second. With GOMAXPROCS above the worker count the rate
// should grow with the workers until the consumer becomes the limit.
func BenchmarkViewPrefetcher(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	s := Split{X: make([]float32, 20000*784), Y: make([]int32, 20000), N: 20000}
	for i := range s.X {
		s.X[i] = float32(r.NormFloat64())
	}
	cfg := schema.Views{Crop: 4, Flip: true, Erase: 0.25, Brightness: 0.3, Contrast: 0.3, Noise: 0.05}
	v, err := NewViews(s, 784, 512, true, 1, cfg, Norm{Mean: []float32{0.286}, Std: []float32{0.353}})
	if err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			p := v.Prefetcher(0, workers)
			defer p.Close()
			for b.Loop() {
				p.Next()
			}
			b.ReportMetric(float64(b.N)*512/b.Elapsed().Seconds(), "examples/s")
		})
	}
}
