package data

import (
	"slices"
	"testing"

	"github.com/expc-dev/expc/schema"
)

func TestSyntheticShapesAndSeeds(t *testing.T) {
	for _, ds := range []schema.Dataset{
		{Name: "blobs", Samples: 500, Centers: 4, Dim: 3, Noise: 1, Seed: 1, EvalFraction: 0.2},
		{Name: "moons", Samples: 301, Noise: 0.1, Seed: 1, EvalFraction: 0.1},
		{Name: "blobs", Seed: 1, EvalFraction: 0.2}, // defaults: 2000 samples, 3 centers, 2 dims
	} {
		m, err := Meta(ds, "")
		if err != nil {
			t.Fatal(err)
		}
		s, err := Load(ds, "")
		if err != nil {
			t.Fatal(err)
		}
		if s.Meta != m {
			t.Fatalf("%s: Load %+v, Meta %+v", ds.Name, s.Meta, m)
		}
		n := ds.Samples
		if n == 0 {
			n = 2000
		}
		if len(s.Train.X) != m.TrainN*m.Features || len(s.Eval.Y) != m.EvalN || m.TrainN+m.EvalN != n || m.EvalN != int(ds.EvalFraction*float64(n)+0.5) {
			t.Fatalf("%s: shapes %+v", ds.Name, m)
		}
		counts := make([]int, m.Classes)
		for _, sp := range []Split{s.Train, s.Eval} {
			for _, y := range sp.Y {
				counts[y]++
			}
		}
		if slices.Min(counts) < (m.TrainN+m.EvalN)/m.Classes {
			t.Errorf("%s: unbalanced classes %v", ds.Name, counts)
		}
		again, _ := Load(ds, "")
		if !slices.Equal(again.Train.X, s.Train.X) || !slices.Equal(again.Eval.Y, s.Eval.Y) {
			t.Errorf("%s: same seed, different data", ds.Name)
		}
		ds.Seed = 2
		other, _ := Load(ds, "")
		if slices.Equal(other.Train.X, s.Train.X) {
			t.Errorf("%s: another seed, same data", ds.Name)
		}
	}
	m, _ := Meta(schema.Dataset{Name: "moons", Samples: 100, Dim: 5, Centers: 7}, "")
	if m.Features != 2 || m.Classes != 2 || m.TrainN != 100 || m.EvalN != 0 {
		t.Errorf("moons meta %+v", m)
	}
}

func TestSyntheticNormalize(t *testing.T) {
	ds := schema.Dataset{Name: "blobs", Samples: 1000, Centers: 3, Dim: 4, Noise: 2, Seed: 5, EvalFraction: 0.25, Normalize: true}
	s, err := Load(ds, "")
	if err != nil {
		t.Fatal(err)
	}
	if mm, sd := featureMoments(s.Train.X, 4); mm > 1e-5 || sd > 1e-4 {
		t.Errorf("train: max |mean| %v, max |std-1| %v", mm, sd)
	}
	// Eval is standardised with the training statistics: roughly, not exactly, 0/1.
	if mm, sd := featureMoments(s.Eval.X, 4); mm > 0.3 || sd > 0.3 || mm == 0 {
		t.Errorf("eval: max |mean| %v, max |std-1| %v", mm, sd)
	}
	raw := ds
	raw.Normalize = false
	r, _ := Load(raw, "")
	for j := range 4 {
		want := (r.Eval.X[j] - s.Norm.Mean[j]) / s.Norm.Std[j]
		if d := abs(float64(s.Eval.X[j] - want)); d > 1e-5 {
			t.Errorf("eval feature %d: %v, want %v", j, s.Eval.X[j], want)
		}
	}
}

func TestSyntheticErrors(t *testing.T) {
	for _, ds := range []schema.Dataset{
		{Name: "blobs", Samples: 1},
		{Name: "moons", Noise: -1},
		{Name: "blobs", EvalFraction: 1},
		{Name: "spirals"},
	} {
		if _, err := Load(ds, ""); err == nil {
			t.Errorf("%+v: no error", ds)
		}
	}
}
