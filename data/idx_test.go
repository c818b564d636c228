package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/schema"
)

// idxBytes encodes an unsigned-byte IDX file with the given dimensions.
func idxBytes(dims []int, payload []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 0x08, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(payload)
	return b.Bytes()
}

func writeFile(t *testing.T, path string, b []byte, gz bool) string {
	t.Helper()
	if gz {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(b)
		w.Close()
		b = z.Bytes()
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tinyImages returns n 2×3 images with deterministic pixels and labels i%3.
func tinyImages(n int) (pix, labels []byte) {
	for i := range n {
		for j := range 6 {
			pix = append(pix, byte((i*37+j*11)%256))
		}
		labels = append(labels, byte(i%3))
	}
	return pix, labels
}

// writeFashion writes the four Fashion-MNIST-named files (with tiny 2×3
// images, which Fashion-MNIST rejects) or real-shaped 28×28 ones.
func writeFashion(t *testing.T, dir string, gz bool, per, ntrain, ntest int) {
	t.Helper()
	ext := ""
	if gz {
		ext = ".gz"
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"train", ntrain}, {"t10k", ntest}} {
		pix := make([]byte, f.n*per)
		lab := make([]byte, f.n)
		for i := range pix {
			pix[i] = byte(i * 7)
		}
		for i := range lab {
			lab[i] = byte(i % 10)
		}
		writeFile(t, filepath.Join(dir, f.name+"-images-idx3-ubyte"+ext), idxBytes([]int{f.n, 28, per / 28}, pix), gz)
		writeFile(t, filepath.Join(dir, f.name+"-labels-idx1-ubyte"+ext), idxBytes([]int{f.n}, lab), gz)
	}
}

func TestIDXPlainAndGzip(t *testing.T) {
	pix, lab := tinyImages(10)
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		img := writeFile(t, filepath.Join(dir, "img"), idxBytes([]int{10, 2, 3}, pix), gz)
		writeFile(t, filepath.Join(dir, "lbl"), idxBytes([]int{10}, lab), gz)
		b, n, per, err := readIDX(img, false)
		if err != nil {
			t.Fatalf("gz=%v: %v", gz, err)
		}
		if n != 10 || per != 6 || !bytes.Equal(b, pix) {
			t.Fatalf("gz=%v: got n=%d per=%d", gz, n, per)
		}
		ds := schema.Dataset{Name: "idx", TrainImages: "img", TrainLabels: "lbl", EvalFraction: 0.2, Seed: 3}
		m, err := Meta(ds, dir)
		if err != nil {
			t.Fatal(err)
		}
		want := Info{Name: "idx", Features: 6, Classes: 3, TrainN: 8, EvalN: 2}
		if m != want {
			t.Fatalf("Meta = %+v, want %+v", m, want)
		}
		s, err := Load(ds, dir)
		if err != nil {
			t.Fatal(err)
		}
		if s.Meta != want {
			t.Fatalf("Load Meta = %+v, want %+v", s.Meta, want)
		}
		// Without Normalize the pixels are scaled to [0,1]; every row is
		// one of the source rows, with its label.
		for i := range s.Train.N {
			row := s.Train.X[i*6 : (i+1)*6]
			found := false
			for k := range 10 {
				match := true
				for j := range 6 {
					if row[j] != float32(pix[k*6+j])/255 {
						match = false
					}
				}
				if match && s.Train.Y[i] == int32(lab[k]) {
					found = true
				}
			}
			if !found {
				t.Fatalf("train row %d = %v (label %d) is not a source row", i, row, s.Train.Y[i])
			}
		}
		ds.Normalize = true
		ns, err := Load(ds, dir)
		if err != nil {
			t.Fatal(err)
		}
		if mean, std := moments(ns.Train.X); abs(mean) > 1e-5 || abs(std-1) > 1e-4 {
			t.Errorf("normalised train mean %v std %v, want 0 and 1", mean, std)
		}
	}
}

func TestIDXErrors(t *testing.T) {
	pix, lab := tinyImages(4)
	good := idxBytes([]int{4, 2, 3}, pix)
	cases := []struct {
		name, want string
		img, lbl   []byte
	}{
		{"bad magic", "bad magic", append([]byte{'P', 'K', 3, 4}, good[4:]...), idxBytes([]int{4}, lab)},
		{"float type", "element type 0x0d", append([]byte{0, 0, 0x0d, 3}, good[4:]...), idxBytes([]int{4}, lab)},
		{"truncated data", "truncated", good[:len(good)-5], idxBytes([]int{4}, lab)},
		{"truncated header", "truncated IDX header", good[:9], idxBytes([]int{4}, lab)},
		{"trailing data", "more data", append(append([]byte{}, good...), 1, 2), idxBytes([]int{4}, lab)},
		{"count mismatch", "count mismatch", good, idxBytes([]int{3}, lab[:3])},
		{"labels 2-d", "1 dimension", good, idxBytes([]int{2, 2}, lab)},
	}
	for _, c := range cases {
		for _, gz := range []bool{false, true} {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "img"), c.img, gz)
			writeFile(t, filepath.Join(dir, "lbl"), c.lbl, gz)
			ds := schema.Dataset{Name: "idx", TrainImages: "img", TrainLabels: "lbl", EvalFraction: 0.25}
			_, err := Load(ds, dir)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("%s (gz=%v): got %v, want an error naming the file and %q", c.name, gz, err, c.want)
			}
		}
	}
	// A label outside the declared classes.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "img"), good, false)
	writeFile(t, filepath.Join(dir, "lbl"), idxBytes([]int{4}, []byte{0, 1, 7, 2}), false)
	_, err := Load(schema.Dataset{Name: "idx", TrainImages: "img", TrainLabels: "lbl", Classes: 3}, dir)
	if err == nil || !strings.Contains(err.Error(), "label 7") || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("label out of range: got %v", err)
	}
	// A truncated gzip stream.
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(good)
	w.Close()
	os.WriteFile(filepath.Join(dir, "img"), z.Bytes()[:z.Len()/2], 0o644)
	if _, _, _, err := readIDX(filepath.Join(dir, "img"), false); err == nil || !strings.Contains(err.Error(), "img") {
		t.Errorf("truncated gzip: got %v", err)
	}
}

func TestIDXWithTestFiles(t *testing.T) {
	dir := t.TempDir()
	pix, lab := tinyImages(6)
	writeFile(t, filepath.Join(dir, "a"), idxBytes([]int{6, 2, 3}, pix), true)
	writeFile(t, filepath.Join(dir, "b"), idxBytes([]int{6}, lab), false)
	writeFile(t, filepath.Join(dir, "c"), idxBytes([]int{2, 6}, pix[:12]), false)
	writeFile(t, filepath.Join(dir, "d"), idxBytes([]int{2}, []byte{4, 0}), true)
	ds := schema.Dataset{Name: "idx", TrainImages: "a", TrainLabels: "b", TestImages: "c", TestLabels: "d", Normalize: true}
	m, err := Meta(ds, dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(ds, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Name: "idx", Features: 6, Classes: 5, TrainN: 6, EvalN: 2}
	if m != want || s.Meta != want {
		t.Fatalf("Meta %+v, Load %+v, want %+v", m, s.Meta, want)
	}
	mean, std := moments(s.Train.X)
	if abs(mean) > 1e-5 || abs(std-1) > 1e-4 {
		t.Errorf("train mean %v std %v, want 0 and 1", mean, std)
	}
}

func TestFashionMNISTFromDir(t *testing.T) {
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		writeFashion(t, dir, gz, 784, 30, 20)
		ds := schema.Dataset{Name: "fashion-mnist", Dir: dir, Normalize: true}
		m, err := Meta(ds, "/elsewhere")
		if err != nil {
			t.Fatal(err)
		}
		want := Info{Name: "fashion-mnist", Features: 784, Classes: 10, TrainN: 30, EvalN: 20}
		if m != want {
			t.Fatalf("Meta = %+v, want %+v", m, want)
		}
		s, err := Load(ds, "")
		if err != nil {
			t.Fatal(err)
		}
		if s.Meta != want || len(s.Train.X) != 30*784 || len(s.Eval.Y) != 20 {
			t.Fatalf("Load: %+v", s.Meta)
		}
		mean, std := moments(s.Train.X)
		if abs(mean) > 1e-4 || abs(std-1) > 1e-3 {
			t.Errorf("train mean %v std %v, want 0 and 1", mean, std)
		}
	}
	// Wrong image size, and a missing directory.
	dir := t.TempDir()
	writeFashion(t, dir, false, 28*27, 3, 2)
	if _, err := Load(schema.Dataset{Name: "fashion-mnist", Dir: dir}, ""); err == nil || !strings.Contains(err.Error(), "28×28") {
		t.Errorf("wrong size: got %v", err)
	}
	_, err := Meta(schema.Dataset{Name: "fashion-mnist", Dir: filepath.Join(dir, "nope")}, "")
	if err == nil || !strings.Contains(err.Error(), "dataset-fashion-mnist") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: got %v", err)
	}
}
