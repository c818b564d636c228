package data

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/expc-dev/expc/schema"
)

func needFashionMNIST(t testing.TB) {
	if _, err := os.Stat(filepath.Join(FashionMNISTDir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Fashion-MNIST not installed in %s (apt install dataset-fashion-mnist): %v", FashionMNISTDir, err)
	}
}

func TestRealFashionMNIST(t *testing.T) {
	needFashionMNIST(t)
	if raceEnabled {
		t.Skip("skipped under -race: converting 55M pixels with instrumentation takes a minute; TestFashionMNISTFromDir covers the same code")
	}
	ds := schema.Dataset{Name: "fashion-mnist", Normalize: true}
	m, err := Meta(ds, "")
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Name: "fashion-mnist", Features: 784, Classes: 10, TrainN: 60000, EvalN: 10000}
	if m != want {
		t.Fatalf("Meta = %+v, want %+v", m, want)
	}
	start := time.Now()
	s, err := Load(ds, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded in %v (a benchmark, not a limit: go test -bench LoadFashionMNIST ./data)", time.Since(start))
	if s.Meta != want || len(s.Train.X) != 60000*784 || len(s.Eval.X) != 10000*784 {
		t.Fatalf("Load: %+v", s.Meta)
	}
	var counts [10]int
	for _, sp := range []Split{s.Train, s.Eval} {
		for i, y := range sp.Y {
			if y < 0 || y >= 10 {
				t.Fatalf("label %d of example %d", y, i)
			}
			counts[y]++
		}
	}
	for c, k := range counts {
		if k != 7000 {
			t.Errorf("class %d has %d examples, want 7000", c, k)
		}
	}
	mean, std := moments(s.Train.X)
	if abs(mean) > 1e-4 || abs(std-1) > 1e-3 {
		t.Errorf("train mean %v std %v, want 0 and 1", mean, std)
	}
	// The known pixel statistics of Fashion-MNIST on [0,1].
	if abs(float64(s.Norm.Mean[0])-0.2860) > 1e-3 || abs(float64(s.Norm.Std[0])-0.3530) > 1e-3 {
		t.Errorf("norm %+v, want mean 0.2860 std 0.3530", s.Norm)
	}
	if em, _ := moments(s.Eval.X); abs(em) > 0.05 {
		t.Errorf("eval mean %v, want about 0", em)
	}
}

func BenchmarkLoadFashionMNIST(b *testing.B) {
	needFashionMNIST(b)
	for b.Loop() {
		if _, err := Load(schema.Dataset{Name: "fashion-mnist", Normalize: true}, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMetaFashionMNIST(b *testing.B) {
	needFashionMNIST(b)
	for b.Loop() {
		if _, err := Meta(schema.Dataset{Name: "fashion-mnist"}, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFill(b *testing.B) {
	s := Split{X: make([]float32, 60000*784), Y: make([]int32, 60000), N: 60000}
	bt := NewBatcher(s, 784, 256, true, 1)
	x, y := make([]float32, 256*784), make([]int32, 256)
	step := 0
	for b.Loop() {
		bt.Fill(step, x, y)
		step++
	}
}
