package data

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/schema"
)

func writeCSV(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// csvRows returns a header and n rows: a = i, b = 2i+1, c = -i/4, label i%3
// in the middle column.
func csvRows(n int) string {
	var b strings.Builder
	b.WriteString("a, b, label, c\n")
	for i := range n {
		fmt.Fprintf(&b, "%d,%d,%d,%g\n", i, 2*i+1, i%3, -float64(i)/4)
	}
	return b.String()
}

func TestCSVSplit(t *testing.T) {
	dir := t.TempDir()
	writeCSV(t, dir, "d.csv", csvRows(50))
	ds := schema.Dataset{Name: "csv", Train: "d.csv", Header: true, LabelColumn: "label", EvalFraction: 0.2, Seed: 7}
	m, err := Meta(ds, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Name: "csv", Features: 3, Classes: 3, TrainN: 40, EvalN: 10}
	if m != want {
		t.Fatalf("Meta = %+v, want %+v", m, want)
	}
	s, err := Load(ds, dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Meta != want || len(s.Train.X) != 40*3 || len(s.Eval.X) != 10*3 {
		t.Fatalf("Load: %+v", s.Meta)
	}
	// Every source row lands in exactly one split, with its own label.
	seen := map[int]int{}
	for _, sp := range []Split{s.Train, s.Eval} {
		for r := range sp.N {
			i := int(sp.X[r*3])
			if sp.X[r*3+1] != float32(2*i+1) || sp.X[r*3+2] != -float32(i)/4 || sp.Y[r] != int32(i%3) {
				t.Fatalf("row %v label %d is scrambled", sp.X[r*3:r*3+3], sp.Y[r])
			}
			seen[i]++
		}
	}
	if len(seen) != 50 {
		t.Fatalf("%d distinct rows, want 50", len(seen))
	}
	// The split is seeded: same seed, same split; another seed, another.
	s2, _ := Load(ds, dir)
	ds.Seed = 8
	s3, _ := Load(ds, dir)
	if fmt.Sprint(s2.Eval.X) != fmt.Sprint(s.Eval.X) || fmt.Sprint(s3.Eval.X) == fmt.Sprint(s.Eval.X) {
		t.Error("split is not a function of the seed")
	}
}

func TestCSVNormalizeAndTest(t *testing.T) {
	dir := t.TempDir()
	writeCSV(t, dir, "train.csv", csvRows(40))
	writeCSV(t, dir, "test.csv", "a,b,label,c\n1,2,4,3\n5,6,0,7\n")
	ds := schema.Dataset{Name: "csv", Train: "train.csv", Test: "test.csv", Header: true, Normalize: true}
	s, err := Load(ds, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Name: "csv", Features: 3, Classes: 5, TrainN: 40, EvalN: 2}
	if s.Meta != want {
		t.Fatalf("Meta = %+v, want %+v", s.Meta, want)
	}
	if mm, sd := featureMoments(s.Train.X, 3); mm > 1e-5 || sd > 1e-4 {
		t.Errorf("train features: max |mean| %v, max |std-1| %v", mm, sd)
	}
	// The eval split uses the training statistics: a = 1 -> (1-19.5)/std.
	if got, want := s.Eval.X[0], (1-s.Norm.Mean[0])/s.Norm.Std[0]; got != want || s.Norm.Mean[0] != 19.5 {
		t.Errorf("eval a = %v, want %v (train mean %v)", got, want, s.Norm.Mean[0])
	}
}

func TestCSVNoHeader(t *testing.T) {
	dir := t.TempDir()
	writeCSV(t, dir, "d.csv", "1,2,0\n3,4,1\n5,6,1\n7,8,0\n")
	m, err := Meta(schema.Dataset{Name: "csv", Train: "d.csv", LabelColumn: "label", EvalFraction: 0.25}, dir)
	if err != nil || m.Features != 2 || m.Classes != 2 || m.TrainN != 3 {
		t.Fatalf("last column as label: %+v %v", m, err)
	}
	s, err := Load(schema.Dataset{Name: "csv", Train: "d.csv", LabelColumn: "0"}, dir)
	if err != nil || s.Meta.Classes != 8 || s.Train.Y[1] != 3 || s.Train.X[1] != 0 {
		t.Fatalf("column 0 as label: %+v %v", s, err)
	}
}

func TestCSVErrors(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"not a number", "x,label\n1,0\n2,1\nabc,0\n", ":4: column 1: \"abc\" is not a finite number"},
		{"bad label", "x,label\n1,0\n2,1.5\n", ":3: column 2: label \"1.5\" is not a non-negative integer"},
		{"negative label", "x,label\n1,-1\n", ":2: column 2: label -1 is negative"},
		{"out of range", "x,label\n1,0\n1,3\n", ":3: column 2: label 3 is out of range [0, 3)"},
		{"ragged", "x,label\n1,0\n1,2,3\n", ":3: wrong number of fields"},
		{"no label column", "x,y\n1,0\n", `:1: no label column "label"`},
		{"no rows", "x,label\n", "no data rows"},
		{"features", "x,z,label\n1,2,0\n", "2 feature columns, but the spec says features: 1"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writeCSV(t, dir, "d.csv", c.text)
		ds := schema.Dataset{Name: "csv", Train: "d.csv", Header: true, Classes: 3}
		if c.name == "features" {
			ds.Features = 1
		}
		_, err := Load(ds, dir)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "d.csv")+c.want) && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		} else if !strings.Contains(err.Error(), "d.csv") {
			t.Errorf("%s: %v does not name the file", c.name, err)
		}
	}
	if _, err := Load(schema.Dataset{Name: "csv", Train: "missing.csv"}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("missing file: %v", err)
	}
}
