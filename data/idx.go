package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/expc-dev/expc/schema"
)

// FashionMNISTDir is where the Debian package dataset-fashion-mnist installs
// the IDX files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// The four Fashion-MNIST files, as named upstream (without ".gz").
var fashionFiles = [4]string{
	"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
	"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
}

// idxFile is an open IDX file (gzip-compressed or plain) positioned after
// its header.
type idxFile struct {
	path string
	dims []int
	r    io.Reader
	f    *os.File
}

// openIDX opens path, decompressing when the file starts with the gzip
// magic, and reads the IDX header: magic 0x00 0x00 0x08 (unsigned bytes),
// the number of dimensions, then each dimension as a big-endian uint32.
func openIDX(path string) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<16)
	var r io.Reader = br
	if b, _ := br.Peek(2); len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: bad gzip header: %v", path, err)
		}
		r = zr
	}
	x := &idxFile{path: path, r: r, f: f}
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: truncated IDX header: %v", path, err)
	}
	if magic[0] != 0 || magic[1] != 0 || magic[3] == 0 {
		f.Close()
		return nil, fmt.Errorf("%s: bad magic 0x%08x: not an IDX file (want 0x0000080N)", path, binary.BigEndian.Uint32(magic[:]))
	}
	if magic[2] != 0x08 {
		f.Close()
		return nil, fmt.Errorf("%s: IDX element type 0x%02x is not supported (only 0x08, unsigned byte)", path, magic[2])
	}
	dims := make([]byte, 4*int(magic[3]))
	if _, err := io.ReadFull(r, dims); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: truncated IDX header (%d dimensions declared): %v", path, magic[3], err)
	}
	for i := 0; i < len(dims); i += 4 {
		x.dims = append(x.dims, int(binary.BigEndian.Uint32(dims[i:])))
	}
	return x, nil
}

func (x *idxFile) Close() error { return x.f.Close() }

// shape checks the header of an image file (n × d1 × d2 ...) or a label
// file (n) and returns n and the values per item.
func (x *idxFile) shape(labels bool) (n, per int, err error) {
	switch {
	case labels && len(x.dims) != 1:
		return 0, 0, fmt.Errorf("%s: a label file has 1 dimension, this one has %d (%v)", x.path, len(x.dims), x.dims)
	case !labels && len(x.dims) < 2:
		return 0, 0, fmt.Errorf("%s: an image file has at least 2 dimensions, this one has %d (%v)", x.path, len(x.dims), x.dims)
	}
	per = 1
	for _, d := range x.dims[1:] {
		per *= d
	}
	if per == 0 || x.dims[0] == 0 || x.dims[0]*per > math.MaxInt32 {
		return 0, 0, fmt.Errorf("%s: unusable IDX dimensions %v", x.path, x.dims)
	}
	return x.dims[0], per, nil
}

// readAll reads the n*per data bytes that follow the header and checks
// that nothing follows them (which also verifies a gzip checksum).
func (x *idxFile) readAll(n, per int) ([]byte, error) {
	buf := make([]byte, n*per)
	if got, err := io.ReadFull(x.r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: truncated: the header declares %d×%d = %d bytes of data, the file holds %d", x.path, n, per, n*per, got)
		}
		return nil, fmt.Errorf("%s: %v", x.path, err)
	}
	var one [1]byte
	switch k, err := x.r.Read(one[:]); {
	case k > 0:
		return nil, fmt.Errorf("%s: more data than the header declares (%v)", x.path, x.dims)
	case err != nil && err != io.EOF:
		return nil, fmt.Errorf("%s: %v", x.path, err)
	}
	return buf, nil
}

// idxHeader returns n and the values per item of an IDX file, reading only
// its header.
func idxHeader(path string, labels bool) (n, per int, err error) {
	x, err := openIDX(path)
	if err != nil {
		return 0, 0, err
	}
	defer x.Close()
	return x.shape(labels)
}

// readIDX reads a whole IDX file.
func readIDX(path string, labels bool) (b []byte, n, per int, err error) {
	x, err := openIDX(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer x.Close()
	if n, per, err = x.shape(labels); err != nil {
		return nil, 0, 0, err
	}
	b, err = x.readAll(n, per)
	return b, n, per, err
}

// imagePair is one images+labels pair of IDX files, read in full, with the
// float32 output allocated (see readImages).
type imagePair struct {
	pix    []byte
	labels []byte
	x      []float32
	n, per int
}

// readPair reads an images file and its labels file concurrently.
func readPair(images, labels string) (imagePair, error) {
	var p imagePair
	var lerr error
	var ln int
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.labels, ln, _, lerr = readIDX(labels, true)
	}()
	err := p.readImages(images)
	<-done
	if err = errors.Join(err, lerr); err != nil {
		return p, err
	}
	if p.n != ln {
		return p, fmt.Errorf("count mismatch: %s holds %d images, %s holds %d labels", images, p.n, labels, ln)
	}
	return p, nil
}

// readImages reads an image file. While it decompresses, a goroutine
// touches every page of the float32 output that convert fills later: first
// touches of fresh memory are expensive (on some VMs as much as the
// decompression), and this overlaps the two.
func (p *imagePair) readImages(path string) error {
	x, err := openIDX(path)
	if err != nil {
		return err
	}
	defer x.Close()
	if p.n, p.per, err = x.shape(false); err != nil {
		return err
	}
	p.x = make([]float32, p.n*p.per)
	touched := make(chan struct{})
	go func() {
		defer close(touched)
		parallel(len(p.x), func(lo, hi int) {
			for i := lo; i < hi; i += 1024 {
				p.x[i] = 0
			}
		})
	}()
	p.pix, err = x.readAll(p.n, p.per)
	<-touched
	return err
}

// fashionPaths finds the four files in dir, preferring .gz.
func fashionPaths(dir string) ([4]string, error) {
	var out [4]string
	for i, name := range fashionFiles {
		for _, p := range []string{filepath.Join(dir, name+".gz"), filepath.Join(dir, name)} {
			if _, err := os.Stat(p); err == nil {
				out[i] = p
				break
			}
		}
		if out[i] == "" {
			return out, fmt.Errorf("fashion-mnist: %s(.gz) not found in %s: %w (the Debian package dataset-fashion-mnist provides it: apt install dataset-fashion-mnist)", name, dir, fs.ErrNotExist)
		}
	}
	return out, nil
}

func fashionDir(ds schema.Dataset, specDir string) string {
	if ds.Dir == "" {
		return FashionMNISTDir
	}
	return resolve(specDir, ds.Dir)
}

func loadFashionMNIST(ds schema.Dataset, specDir string) (*Set, error) {
	paths, err := fashionPaths(fashionDir(ds, specDir))
	if err != nil {
		return nil, err
	}
	var train, test imagePair
	var terr error
	done := make(chan struct{})
	go func() { defer close(done); test, terr = readPair(paths[2], paths[3]) }()
	train, err = readPair(paths[0], paths[1])
	<-done
	if err = errors.Join(err, terr); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		path string
		per  int
	}{{paths[0], train.per}, {paths[2], test.per}} {
		if p.per != 28*28 {
			return nil, fmt.Errorf("%s: Fashion-MNIST images are 28×28, this file holds %d values per image", p.path, p.per)
		}
	}
	return imageSet(train, test, 10, ds.Normalize, paths[1], paths[3])
}

// loadIDX reads images/labels by path. Without test files the evaluation
// split is carved off the training data.
func loadIDX(ds schema.Dataset, specDir string) (*Set, error) {
	if ds.TrainImages == "" || ds.TrainLabels == "" {
		return nil, fmt.Errorf("idx: train_images and train_labels are required")
	}
	if (ds.TestImages == "") != (ds.TestLabels == "") {
		return nil, fmt.Errorf("idx: give both test_images and test_labels, or neither")
	}
	train, err := readPair(resolve(specDir, ds.TrainImages), resolve(specDir, ds.TrainLabels))
	if err != nil {
		return nil, err
	}
	classes := ds.Classes
	if classes <= 0 {
		classes = int(maxByte(train.labels)) + 1
	}
	if ds.TestImages == "" {
		// Convert everything as "train" first, then split, then normalise
		// with the statistics of the training rows only.
		s, err := imageSet(train, imagePair{}, classes, false, resolve(specDir, ds.TrainLabels), "")
		if err != nil {
			return nil, err
		}
		s.Train, s.Eval, err = splitRows(s.Train.X, s.Train.Y, s.Train.N, train.per, ds.EvalFraction, uint64(ds.Seed))
		if err != nil {
			return nil, fmt.Errorf("idx: %v", err)
		}
		if ds.Normalize {
			s.Norm = standardiseGlobal(s)
		}
		return s, nil
	}
	test, err := readPair(resolve(specDir, ds.TestImages), resolve(specDir, ds.TestLabels))
	if err != nil {
		return nil, err
	}
	if test.per != train.per {
		return nil, fmt.Errorf("idx: %s has %d values per image, %s has %d", ds.TrainImages, train.per, ds.TestImages, test.per)
	}
	if ds.Classes <= 0 {
		classes = max(classes, int(maxByte(test.labels))+1)
	}
	return imageSet(train, test, classes, ds.Normalize, resolve(specDir, ds.TrainLabels), resolve(specDir, ds.TestLabels))
}

func maxByte(b []byte) byte {
	var m byte
	for _, v := range b {
		m = max(m, v)
	}
	return m
}

// imageSet converts byte images to float32 in one pass: to [0,1], and with
// normalize standardised by the training pixels' mean and std (computed
// from a histogram, so the bytes are read twice and the floats written once).
func imageSet(train, test imagePair, classes int, normalize bool, trainLabels, testLabels string) (*Set, error) {
	s := &Set{Meta: Info{Features: train.per, Classes: classes}}
	var lut [256]float32
	for i := range lut {
		lut[i] = float32(i) / 255
	}
	if normalize {
		mean, std := histStats(train.pix)
		for i := range lut {
			lut[i] = float32((float64(i)/255 - mean) / std)
		}
		s.Norm = Norm{Mean: []float32{float32(mean)}, Std: []float32{float32(std)}}
	}
	var err error
	if s.Train, err = convert(train, &lut, classes, trainLabels); err != nil {
		return nil, err
	}
	if s.Eval, err = convert(test, &lut, classes, testLabels); err != nil {
		return nil, err
	}
	return s, nil
}

func convert(p imagePair, lut *[256]float32, classes int, labelsPath string) (Split, error) {
	sp := Split{X: p.x, Y: make([]int32, p.n), N: p.n}
	for i, l := range p.labels {
		if int(l) >= classes {
			return Split{}, fmt.Errorf("%s: label %d of item %d is out of range [0, %d)", labelsPath, l, i, classes)
		}
		sp.Y[i] = int32(l)
	}
	parallel(len(p.pix), func(lo, hi int) {
		dst, src := sp.X[lo:hi], p.pix[lo:hi]
		for i, b := range src {
			dst[i] = lut[b]
		}
	})
	return sp, nil
}

// histStats returns the mean and std of the bytes scaled to [0,1].
func histStats(pix []byte) (mean, std float64) {
	var (
		mu sync.Mutex
		h  [256]int
	)
	parallel(len(pix), func(lo, hi int) {
		var local [256]int
		for _, b := range pix[lo:hi] {
			local[b]++
		}
		mu.Lock()
		for i, c := range local {
			h[i] += c
		}
		mu.Unlock()
	})
	var s, sq float64
	for i, c := range h {
		v := float64(i) / 255
		s += float64(c) * v
		sq += float64(c) * v * v
	}
	n := float64(max(len(pix), 1))
	mean = s / n
	std = math.Sqrt(max(sq/n-mean*mean, 0))
	if std < 1e-12 {
		std = 1
	}
	return mean, std
}

// standardiseGlobal standardises images already scaled to [0,1] with the
// training split's global mean and std (idx without a test set, where the
// split happens after conversion).
func standardiseGlobal(s *Set) Norm {
	var sum, sq float64
	for _, v := range s.Train.X {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	n := float64(max(len(s.Train.X), 1))
	mean := sum / n
	std := math.Sqrt(max(sq/n-mean*mean, 0))
	if std < 1e-12 {
		std = 1
	}
	m, inv := float32(mean), float32(1/std)
	for _, x := range [][]float32{s.Train.X, s.Eval.X} {
		for i := range x {
			x[i] = (x[i] - m) * inv
		}
	}
	return Norm{Mean: []float32{m}, Std: []float32{float32(std)}}
}

// idxMeta reads only headers (and, without Classes, the small label file).
func idxMeta(ds schema.Dataset, specDir string) (Info, error) {
	var m Info
	if ds.Name == "fashion-mnist" {
		paths, err := fashionPaths(fashionDir(ds, specDir))
		if err != nil {
			return m, err
		}
		var ns [4]int
		for i, p := range paths {
			n, per, err := idxHeader(p, i%2 == 1)
			if err != nil {
				return m, err
			}
			if i%2 == 0 && per != 28*28 {
				return m, fmt.Errorf("%s: Fashion-MNIST images are 28×28, this file holds %d values per image", p, per)
			}
			ns[i] = n
		}
		for i := 0; i < 4; i += 2 {
			if ns[i] != ns[i+1] {
				return m, fmt.Errorf("count mismatch: %s holds %d images, %s holds %d labels", paths[i], ns[i], paths[i+1], ns[i+1])
			}
		}
		return Info{Features: 28 * 28, Classes: 10, TrainN: ns[0], EvalN: ns[2]}, nil
	}
	if ds.TrainImages == "" || ds.TrainLabels == "" {
		return m, fmt.Errorf("idx: train_images and train_labels are required")
	}
	pairs := [][2]string{{ds.TrainImages, ds.TrainLabels}}
	if ds.TestImages != "" || ds.TestLabels != "" {
		if ds.TestImages == "" || ds.TestLabels == "" {
			return m, fmt.Errorf("idx: give both test_images and test_labels, or neither")
		}
		pairs = append(pairs, [2]string{ds.TestImages, ds.TestLabels})
	}
	m.Classes = ds.Classes
	var ns []int
	for _, p := range pairs {
		img, lab := resolve(specDir, p[0]), resolve(specDir, p[1])
		n, per, err := idxHeader(img, false)
		if err != nil {
			return m, err
		}
		if m.Features != 0 && per != m.Features {
			return m, fmt.Errorf("idx: %s has %d values per image, %s has %d", pairs[0][0], m.Features, p[0], per)
		}
		m.Features = per
		var ln int
		if ds.Classes > 0 {
			ln, _, err = idxHeader(lab, true)
		} else {
			var labels []byte
			labels, ln, _, err = readIDX(lab, true)
			m.Classes = max(m.Classes, int(maxByte(labels))+1)
		}
		if err != nil {
			return m, err
		}
		if n != ln {
			return m, fmt.Errorf("count mismatch: %s holds %d images, %s holds %d labels", img, n, lab, ln)
		}
		ns = append(ns, n)
	}
	if len(ns) == 2 {
		m.TrainN, m.EvalN = ns[0], ns[1]
		return m, nil
	}
	e, err := evalCount(ns[0], ds.EvalFraction)
	if err != nil {
		return m, fmt.Errorf("idx: %v", err)
	}
	m.TrainN, m.EvalN = ns[0]-e, e
	return m, nil
}
