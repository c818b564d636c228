// Package data loads the datasets an experiment names and feeds them to the
// training loop.
//
//   - Meta reports shapes (features, classes, split sizes) reading as little
//     as possible: IDX headers, a CSV scan, or the generator parameters.
//   - Load reads (or generates) the data, splits it and normalises it.
//   - Batcher and Prefetcher iterate the training split deterministically and
//     without allocation; EvalBatches covers the evaluation split.
//
// Datasets: "fashion-mnist" (IDX files from the Debian package
// dataset-fashion-mnist), "idx" (IDX files by path), "csv", and the seeded
// synthetic generators "blobs" and "moons", "tokens" (token streams for
// sequence models, tokens.go) and "mixture_regression" (mixture.go).
//
// CSV: numeric feature columns and one integer label column. With Header the
// label column is found by name (LabelColumn, default "label"); without,
// LabelColumn may be a 0-based column index, otherwise the label is the last
// column. Errors name the file and line. Synthetic data: zero Samples,
// Centers and Dim take the schema defaults (2000, 3, 2); Noise is used as
// given. Blob centers are drawn uniformly in [-10,10]^Dim.
//
// Splits: fashion-mnist has its own test set; idx and csv use theirs when
// test files are given. Otherwise the evaluation split is
// round(EvalFraction*N) examples chosen by a shuffle seeded with
// Dataset.Seed; the rest is the training split.
//
// Normalisation (Dataset.Normalize): images are always scaled to [0,1];
// Normalize then standardises them with the training split's global mean and
// std. CSV and synthetic features are standardised per feature with the
// training split's statistics. Both apply the training statistics to the
// evaluation split too. A feature with zero std is only centred.
package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/expc-dev/expc/schema"
)

// Info is what the compiler needs to know about a dataset's shape; Meta
// returns it without loading the data, Load in Set.Meta.
type Info struct {
	Name     string // dataset name, as in the spec
	Features int    // values per example
	Classes  int    // labels are in [0, Classes)
	TrainN   int    // training examples
	EvalN    int    // evaluation examples (0: no evaluation split)
}

// Split is one part of a dataset: N examples, row-major.
type Split struct {
	X []float32 // N*Features values; row i is X[i*Features : (i+1)*Features]
	Y []int32   // N labels in [0, Classes)
	N int
}

// Set is a loaded dataset.
type Set struct {
	Train, Eval Split
	Meta        Info
	// Norm holds the training statistics the features were standardised
	// with: one value each for images (global, on the [0,1] scale), one per
	// feature otherwise. Both nil when Normalize is off.
	Norm Norm
}

// Norm is a normalisation: x' = (x - Mean) / Std.
type Norm struct {
	Mean, Std []float32
}

// Load reads or generates the dataset ds; relative paths are relative to
// specDir.
func Load(ds schema.Dataset, specDir string) (*Set, error) {
	var (
		s   *Set
		err error
	)
	switch ds.Name {
	case "fashion-mnist":
		s, err = loadFashionMNIST(ds, specDir)
	case "idx":
		s, err = loadIDX(ds, specDir)
	case "csv":
		s, err = loadCSV(ds, specDir)
	case "blobs", "moons":
		s, err = loadSynthetic(ds)
	case "tokens":
		s, err = loadTokens(ds)
	case "mixture_regression":
		s, err = loadMixture(ds)
	default:
		return nil, fmt.Errorf("data: unknown dataset %q (want fashion-mnist, idx, csv, blobs, moons, tokens or mixture_regression)", ds.Name)
	}
	if err != nil {
		return nil, err
	}
	s.Meta.Name = ds.Name
	s.Meta.TrainN, s.Meta.EvalN = s.Train.N, s.Eval.N
	return s, nil
}

// resolve makes a spec-relative path absolute.
func resolve(specDir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(specDir, p)
}

// evalCount is the size of the evaluation split carved off n examples.
func evalCount(n int, frac float64) (int, error) {
	if frac < 0 || frac >= 1 || math.IsNaN(frac) {
		return 0, fmt.Errorf("eval_fraction %v is outside [0, 1)", frac)
	}
	e := int(math.Round(frac * float64(n)))
	if n-e < 1 {
		return 0, fmt.Errorf("%d examples leave no training data with eval_fraction %v", n, frac)
	}
	return e, nil
}

// Random streams: the same Dataset.Seed drives independent sequences.
const (
	streamSplit = 0x73706c6974 // "split"
	streamBlobs = 0x626c6f6273 // "blobs"
	streamMoons = 0x6d6f6f6e73 // "moons"
)

// splitRows shuffles the n rows of (x, y) with seed and returns the training
// and evaluation splits (evaluation: round(frac*n) rows).
func splitRows(x []float32, y []int32, n, features int, frac float64, seed uint64) (train, eval Split, err error) {
	e, err := evalCount(n, frac)
	if err != nil {
		return Split{}, Split{}, err
	}
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	if e > 0 { // with nothing to carve off, keep the order
		permute(perm, rand.NewPCG(seed, streamSplit))
	}
	gather := func(rows []int32) Split {
		s := Split{X: make([]float32, len(rows)*features), Y: make([]int32, len(rows)), N: len(rows)}
		for i, r := range rows {
			copy(s.X[i*features:(i+1)*features], x[int(r)*features:(int(r)+1)*features])
			s.Y[i] = y[r]
		}
		return s
	}
	return gather(perm[e:]), gather(perm[:e]), nil
}

// standardise normalises every feature of train and eval with train's
// per-feature mean and std (two passes, so large offsets do not cancel).
func standardise(train, eval *Split, features int) Norm {
	nm := Norm{Mean: make([]float32, features), Std: make([]float32, features)}
	sum := make([]float64, features)
	rows := func(s *Split, f func(row []float32)) {
		for i := range s.N {
			f(s.X[i*features : (i+1)*features])
		}
	}
	n := float64(max(train.N, 1))
	rows(train, func(row []float32) {
		for j, v := range row {
			sum[j] += float64(v)
		}
	})
	for j := range sum {
		nm.Mean[j] = float32(sum[j] / n)
		sum[j] = 0
	}
	rows(train, func(row []float32) {
		for j, v := range row {
			d := float64(v - nm.Mean[j])
			sum[j] += d * d
		}
	})
	for j := range sum {
		nm.Std[j] = float32(math.Sqrt(sum[j] / n))
		if nm.Std[j] < 1e-12 {
			nm.Std[j] = 1
		}
	}
	for _, s := range []*Split{train, eval} {
		rows(s, func(row []float32) {
			for j := range row {
				row[j] = (row[j] - nm.Mean[j]) / nm.Std[j]
			}
		})
	}
	return nm
}

// parallel runs f over [0, n) in contiguous chunks, one per CPU.
func parallel(n int, f func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), max(n/(1<<16), 1))
	var wg sync.WaitGroup
	for k := range w {
		lo, hi := n*k/w, n*(k+1)/w
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}
