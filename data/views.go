package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/expc-dev/expc/schema"
)

// Views makes the rows of contrastive training steps: for a batch of N
// examples, rows 0..N-1 are the first views and rows N..2N-1 the second
// views of the same examples, in the same order. Pairing "augment" makes
// both views by augmenting the example; "same_class" pairs the example
// (augmented) with another example of its class (augmented), for
// retrieval-style training.
//
// The examples of step s are the ones the Batcher gives for s (an epoch
// permutation seeded by (seed, epoch)). Every random draw of a row comes
// from a PCG seeded by (seed ^ views.seed, step, row), so the rows of any
// step can be reproduced (resume, replay) and do not depend on the order in
// which steps are filled. Fill does not allocate.
type Views struct {
	split    Split
	features int
	batch    int
	shuffle  bool
	seed     uint64
	cfg      schema.Views
	side     int       // image side (features = side²), 0 for other data
	mean     []float32 // per-feature (or one global) normalisation
	std      []float32
	steps    int
	perm     []int32
	epoch    int
	epcg     rand.PCG
	byClass  [][]int32 // same_class: example indices per label
	rowState           // the draws and scratch of the goroutine calling Fill
}

// rowState is what making one row needs besides the read-only Views: its
// random stream and an image's scratch. Each goroutine that fills rows
// has its own.
type rowState struct {
	pcg rand.PCG
	rng *rand.Rand // draws from pcg
	buf []float32  // one image on the [0, 1] scale
	tmp []float32
}

// init gives st fresh scratch for images of features values and points
// its draws at its own stream (a copied rowState must be re-initialised).
func (st *rowState) init(features int) {
	st.buf, st.tmp = make([]float32, features), make([]float32, features)
	st.rng = rand.New(&st.pcg)
}

// NewViews iterates split as NewBatcher does, making two views per example.
// norm is the standardisation the split went through (Set.Norm; zero when
// none): augmentations act on the unstandardised scale.
func NewViews(split Split, features, batch int, shuffle bool, seed uint64, cfg schema.Views, norm Norm) (*Views, error) {
	if features <= 0 || batch <= 0 {
		return nil, fmt.Errorf("data: views: features %d and batch %d must be positive", features, batch)
	}
	if len(split.X) != split.N*features || len(split.Y) != split.N {
		return nil, fmt.Errorf("data: views: split of %d examples has %d values and %d labels", split.N, len(split.X), len(split.Y))
	}
	v := &Views{split: split, features: features, batch: batch, shuffle: shuffle,
		seed: seed ^ uint64(cfg.Seed)*0x9e3779b97f4a7c15, cfg: cfg, steps: split.N / batch, epoch: -1,
		mean: norm.Mean, std: norm.Std}
	v.rowState.init(features)
	if s := int(math.Round(math.Sqrt(float64(features)))); s*s == features && s > 1 {
		v.side = s
	}
	if shuffle {
		v.perm = make([]int32, split.N)
	}
	if cfg.Pairing == "same_class" {
		for i, y := range split.Y {
			if y < 0 {
				return nil, fmt.Errorf("data: views: example %d has label %d", i, y)
			}
			for int(y) >= len(v.byClass) {
				v.byClass = append(v.byClass, nil)
			}
			v.byClass[y] = append(v.byClass[y], int32(i))
		}
	}
	return v, nil
}

// StepsPerEpoch is the number of full batches in the split.
func (v *Views) StepsPerEpoch() int { return v.steps }

// Rows is the number of rows Fill writes: two per example.
func (v *Views) Rows() int { return 2 * v.batch }

// Fill writes the rows of step into x (Rows()·features values), their
// labels into y and their examples' indices in the split into ids (Rows()
// each; ids may be nil).
func (v *Views) Fill(step int, x []float32, y, ids []int32) {
	v.startStep(step)
	v.fillRows(&v.rowState, step, 0, v.batch, x, y, ids)
}

// startStep readies the epoch permutation of step; the rows of the step can
// then be filled in any order, by any number of goroutines (fillRows).
func (v *Views) startStep(step int) {
	if v.steps == 0 {
		panic(fmt.Sprintf("data: Views.Fill: %d examples are fewer than one batch of %d", v.split.N, v.batch))
	}
	if epoch := step / v.steps; v.shuffle && epoch != v.epoch {
		v.epcg.Seed(v.seed, uint64(epoch))
		permute(v.perm, &v.epcg)
		v.epoch = epoch
	}
}

// fillRows writes the two views of examples [lo, hi) of step, drawing from
// st: row i's draws are seeded by (step, i) alone.
func (v *Views) fillRows(st *rowState, step, lo, hi int, x []float32, y, ids []int32) {
	k := step % v.steps
	F, N := v.features, v.batch
	for i := lo; i < hi; i++ {
		r := k*N + i
		if v.shuffle {
			r = int(v.perm[r])
		}
		other := r
		st.pcg.Seed(v.seed^0x76696577, uint64(step)<<20|uint64(i))
		if v.cfg.Pairing == "same_class" {
			other = v.sameClass(st, r)
		}
		v.augment(st, x[i*F:(i+1)*F], v.split.X[r*F:(r+1)*F])
		v.augment(st, x[(N+i)*F:(N+i+1)*F], v.split.X[other*F:(other+1)*F])
		y[i], y[N+i] = v.split.Y[r], v.split.Y[r]
		if ids != nil {
			ids[i], ids[N+i] = int32(r), int32(r)
		}
	}
}

// sameClass draws another example with r's label uniformly (r itself when
// it is the only one): a slot among the first len−1, with r's slot standing
// for the last.
func (v *Views) sameClass(st *rowState, r int) int {
	c := v.byClass[v.split.Y[r]]
	if len(c) < 2 {
		return r
	}
	j := int(c[bounded(&st.pcg, uint64(len(c)-1))])
	if j == r {
		j = int(c[len(c)-1])
	}
	return j
}

// augment writes one augmented copy of src (standardised) into dst.
func (v *Views) augment(st *rowState, dst, src []float32) {
	c, F := v.cfg, v.features
	u := st.buf
	for j, s := range src { // back to the [0, 1] scale
		u[j] = s*v.stdOf(j) + v.meanOf(j)
	}
	if v.side > 0 {
		v.shiftFlip(st, u)
	}
	r := st.rng
	if c.Brightness > 0 {
		d := float32((2*r.Float64() - 1) * c.Brightness)
		for j := range u {
			u[j] += d
		}
	}
	if c.Contrast > 0 {
		var m float64
		for _, x := range u {
			m += float64(x)
		}
		mean := float32(m / float64(F))
		f := float32(1 + (2*r.Float64()-1)*c.Contrast)
		for j, x := range u {
			u[j] = mean + (x-mean)*f
		}
	}
	if v.side > 0 && c.Erase > 0 && r.Float64() < c.Erase {
		h, w := 4+r.IntN(9), 4+r.IntN(9)
		top, left := r.IntN(v.side-min(h, v.side)+1), r.IntN(v.side-min(w, v.side)+1)
		for i := top; i < min(top+h, v.side); i++ {
			clear(u[i*v.side+left : i*v.side+min(left+w, v.side)])
		}
	}
	if c.Noise > 0 {
		for j := range u {
			u[j] += float32(r.NormFloat64() * c.Noise)
		}
	}
	for j, x := range u {
		if v.side > 0 {
			x = min(max(x, 0), 1)
		}
		dst[j] = (x - v.meanOf(j)) / v.stdOf(j)
	}
}

// shiftFlip shifts the image by up to crop pixels each way (zero padding)
// and flips it horizontally with probability 1/2.
func (v *Views) shiftFlip(st *rowState, u []float32) {
	c, S, r := v.cfg, v.side, st.rng
	dx, dy := 0, 0
	if c.Crop > 0 {
		dx, dy = r.IntN(2*c.Crop+1)-c.Crop, r.IntN(2*c.Crop+1)-c.Crop
	}
	flip := c.Flip && r.IntN(2) == 0
	if dx == 0 && dy == 0 && !flip {
		return
	}
	t := st.tmp
	for i := range S {
		si := i + dy
		for j := range S {
			sj := j + dx
			if flip {
				sj = S - 1 - j + dx
			}
			if si < 0 || si >= S || sj < 0 || sj >= S {
				t[i*S+j] = 0
			} else {
				t[i*S+j] = u[si*S+sj]
			}
		}
	}
	copy(u, t)
}

func (v *Views) meanOf(j int) float32 {
	switch len(v.mean) {
	case 0:
		return 0
	case 1:
		return v.mean[0]
	}
	return v.mean[j]
}

func (v *Views) stdOf(j int) float32 {
	switch len(v.std) {
	case 0:
		return 1
	case 1:
		return v.std[0]
	}
	return v.std[j]
}

// ViewPrefetcher fills the next step's views in the background while the
// caller computes on the current ones, as Prefetcher does for batches, with
// a step's examples split over one or more goroutines (augmentation costs
// far more than copying a batch: on a GPU it is what a contrastive step
// waits for). Next does not allocate.
type ViewPrefetcher struct {
	v       Views
	xs      [2][]float32
	ys      [2][]int32
	ids     [2][]int32
	db      doubleBuffer
	helpers []viewHelper  // goroutines beyond the filler
	done    chan struct{} // a helper finished its rows
	exited  sync.WaitGroup
}

// viewHelper fills the rows it is sent, with its own draws and scratch.
type viewHelper struct {
	st   *rowState
	jobs chan viewJob
}

type viewJob struct{ step, slot, lo, hi int }

// Prefetcher starts prefetching the views of steps start, start+1, ... on
// workers goroutines (at least one). The rows do not depend on workers.
func (v *Views) Prefetcher(start, workers int) *ViewPrefetcher {
	if v.steps == 0 {
		panic(fmt.Sprintf("data: Views.Prefetcher: %d examples are fewer than one batch of %d", v.split.N, v.batch))
	}
	p := &ViewPrefetcher{v: *v}
	p.v.epoch = -1
	p.v.rowState.init(v.features)
	if v.shuffle {
		p.v.perm = make([]int32, len(v.perm))
	}
	for i := range 2 {
		p.xs[i] = make([]float32, v.Rows()*v.features)
		p.ys[i] = make([]int32, v.Rows())
		p.ids[i] = make([]int32, v.Rows())
	}
	p.helpers = make([]viewHelper, max(1, min(workers, v.batch))-1)
	p.done = make(chan struct{}, len(p.helpers))
	for i := range p.helpers {
		h := &p.helpers[i]
		h.st, h.jobs = new(rowState), make(chan viewJob, 1)
		h.st.init(v.features)
		p.exited.Add(1)
		go p.help(h)
	}
	p.db.start(start, p.fill)
	return p
}

// fill makes step's rows in slot: the filler takes the first share of the
// examples and each helper one of the others.
func (p *ViewPrefetcher) fill(step, slot int) {
	p.v.startStep(step)
	n := p.v.batch
	per := (n + len(p.helpers)) / (len(p.helpers) + 1)
	for i := range p.helpers {
		lo := min(n, (i+1)*per)
		p.helpers[i].jobs <- viewJob{step, slot, lo, min(n, lo+per)}
	}
	p.v.fillRows(&p.v.rowState, step, 0, min(n, per), p.xs[slot], p.ys[slot], p.ids[slot])
	for range p.helpers {
		<-p.done
	}
}

func (p *ViewPrefetcher) help(h *viewHelper) {
	defer p.exited.Done()
	for j := range h.jobs {
		p.v.fillRows(h.st, j.step, j.lo, j.hi, p.xs[j.slot], p.ys[j.slot], p.ids[j.slot])
		p.done <- struct{}{}
	}
}

// Next returns the rows and labels of the next step; IDs returns their
// examples' indices. Both stay valid until the following Next or Close.
func (p *ViewPrefetcher) Next() (x []float32, y []int32) {
	slot := p.db.next("ViewPrefetcher")
	return p.xs[slot], p.ys[slot]
}

// IDs are the dataset indices of the rows Next returned last.
func (p *ViewPrefetcher) IDs() []int32 { return p.ids[p.db.held] }

// Close stops the background goroutines and waits for them to exit.
func (p *ViewPrefetcher) Close() {
	if p.db.closed {
		return
	}
	p.db.close() // the filler has exited, so no job is in flight
	for i := range p.helpers {
		close(p.helpers[i].jobs)
	}
	p.exited.Wait()
}
