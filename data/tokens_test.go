package data

import (
	"math"
	"slices"
	"testing"

	"github.com/expc-dev/expc/schema"
)

func TestTokensShapesAndTasks(t *testing.T) {
	ds := schema.Dataset{Name: "tokens", Samples: 400, SeqLen: 16, Vocab: 20, Seed: 3, EvalFraction: 0.25}
	m, err := Meta(ds, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(ds, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Meta != m || m.Features != 17 || m.Classes != 20 || m.TrainN != 300 || m.EvalN != 100 {
		t.Fatalf("Meta %+v, Load %+v", m, s.Meta)
	}
	again, _ := Load(ds, "")
	if !slices.Equal(again.Train.X, s.Train.X) || !slices.Equal(again.Eval.Y, s.Eval.Y) {
		t.Fatal("the same seed gives different data")
	}
	ds2 := ds
	ds2.Seed = 4
	other, _ := Load(ds2, "")
	if slices.Equal(other.Train.X, s.Train.X) {
		t.Fatal("another seed gives the same data")
	}
	const c = 20 - 6
	sep, eq := c+4, c+5
	perSource := make([]int, 4)
	for _, sp := range []Split{s.Train, s.Eval} {
		for i := range sp.N {
			row := make([]int, 17)
			for j := range row {
				v := sp.X[i*17+j]
				if v != float32(int(v)) || v < 0 || v >= 20 {
					t.Fatalf("token %v is not an id of a 20-token vocabulary", v)
				}
				row[j] = int(v)
			}
			src := int(sp.Y[i])
			perSource[src]++
			if row[0] != c+src {
				t.Fatalf("example of source %d starts with %d", src, row[0])
			}
			body := row[1:]
			l := (len(body) - 1) / 2
			switch TokenSources[src] {
			case "copy", "reverse":
				if body[l] != sep {
					t.Fatalf("%s: no separator at %d: %v", TokenSources[src], l, body)
				}
				for j := 0; j < l; j++ {
					want := body[j]
					if TokenSources[src] == "reverse" {
						want = body[l-1-j]
					}
					if body[l+1+j] != want {
						t.Fatalf("%s: %v", TokenSources[src], body)
					}
				}
			case "modadd":
				for j := 0; j+3 < len(body); j += 4 {
					if body[j+2] != eq || body[j+3] != (body[j]+body[j+1])%c {
						t.Fatalf("modadd: %v", body)
					}
				}
			case "markov":
				for _, v := range body {
					if v >= c {
						t.Fatalf("markov emits a special token: %v", body)
					}
				}
			}
		}
	}
	if slices.Min(perSource) != 100 {
		t.Errorf("sources are not balanced: %v", perSource)
	}
	u := UnigramNLL(s)
	if !(u > 1 && u < math.Log(20)) {
		t.Errorf("unigram NLL %v, want between 1 and log 20", u)
	}
}

func TestTokensErrors(t *testing.T) {
	for _, ds := range []schema.Dataset{
		{Name: "tokens", SeqLen: 2},
		{Name: "tokens", Vocab: 8},
		{Name: "tokens", Sources: []string{"sort"}},
	} {
		if _, err := Meta(ds, ""); err == nil {
			t.Errorf("%+v: no error", ds)
		}
	}
}

func TestMixtureRegression(t *testing.T) {
	ds := schema.Dataset{Name: "mixture_regression", Samples: 20000, Dim: 2, Experts: 2, Noise: 0.3, Seed: 1, EvalFraction: 0.5}
	m, err := Meta(ds, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(ds, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Meta != m || m.Features != 3 || m.Classes != 2 || m.TrainN != 10000 {
		t.Fatalf("Meta %+v, Load %+v", m, s.Meta)
	}
	truth, err := TrueMixture(ds)
	if err != nil {
		t.Fatal(err)
	}
	// The expert labels follow the gate: the mean gate probability of
	// expert 0 matches its share of labels (within 4 standard errors).
	var share, p float64
	x := make([]float64, 2)
	for i := range s.Train.N {
		x[0], x[1] = float64(s.Train.X[i*3]), float64(s.Train.X[i*3+1])
		p += truth.Gate(x)[0]
		if s.Train.Y[i] == 0 {
			share++
		}
	}
	n := float64(s.Train.N)
	if math.Abs(share/n-p/n) > 4*math.Sqrt(0.25/n) {
		t.Errorf("expert 0 drew %.3f of the examples, its mean gate is %.3f", share/n, p/n)
	}
	// The truth explains the data better than a single Gaussian does,
	// and its NLL is the same on both halves.
	tr, ev := truth.OracleNLL(s.Train), truth.OracleNLL(s.Eval)
	var mean, sq float64
	for i := range s.Train.N {
		mean += float64(s.Train.X[i*3+2]) / n
	}
	for i := range s.Train.N {
		d := float64(s.Train.X[i*3+2]) - mean
		sq += d * d / n
	}
	single := 0.5*math.Log(2*math.Pi*sq) + 0.5
	if !(tr < single-0.5) || math.Abs(tr-ev) > 0.05 {
		t.Errorf("oracle NLL %.3f (train) %.3f (eval), single Gaussian %.3f", tr, ev, single)
	}
}
