package data

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Batcher cuts a training split into fixed-size batches. The order of epoch
// e is a pure function of (seed, e), so the batch of any global step can be
// reproduced (resume, replay). The last partial batch of an epoch is
// dropped. Fill does not allocate; a Batcher is not safe for concurrent use
// (a Prefetcher works on its own copy).
type Batcher struct {
	split    Split
	features int
	batch    int
	shuffle  bool
	seed     uint64
	steps    int
	perm     []int32 // order of epoch `epoch` (shuffle only)
	epoch    int     // -1: perm holds nothing yet
	pcg      rand.PCG
}

// NewBatcher iterates split (features values per example) in batches of
// batch examples, reshuffled every epoch when shuffle is set. It panics on
// a split whose X and Y do not match N; a split smaller than one batch
// gives StepsPerEpoch 0 (check Info.TrainN >= batch before).
func NewBatcher(split Split, features, batch int, shuffle bool, seed uint64) *Batcher {
	if features <= 0 || batch <= 0 {
		panic(fmt.Sprintf("data: NewBatcher: features %d and batch %d must be positive", features, batch))
	}
	if len(split.X) != split.N*features || len(split.Y) != split.N {
		panic(fmt.Sprintf("data: NewBatcher: split of %d examples has %d values and %d labels, want %d×%d and %d",
			split.N, len(split.X), len(split.Y), split.N, features, split.N))
	}
	b := &Batcher{split: split, features: features, batch: batch, shuffle: shuffle, seed: seed,
		steps: split.N / batch, epoch: -1}
	if shuffle {
		b.perm = make([]int32, split.N)
	}
	return b
}

// StepsPerEpoch is the number of full batches in the split.
func (b *Batcher) StepsPerEpoch() int { return b.steps }

// BatchSize is the number of examples per batch.
func (b *Batcher) BatchSize() int { return b.batch }

// Fill writes the batch of global step step (epoch step/StepsPerEpoch) into
// x (at least batch*features values) and y (at least batch labels).
func (b *Batcher) Fill(step int, x []float32, y []int32) {
	if b.steps == 0 {
		panic(fmt.Sprintf("data: Batcher.Fill: %d examples are fewer than one batch of %d", b.split.N, b.batch))
	}
	if step < 0 || len(x) < b.batch*b.features || len(y) < b.batch {
		panic(fmt.Sprintf("data: Batcher.Fill: step %d with buffers of %d values and %d labels, want step >= 0, %d and %d",
			step, len(x), len(y), b.batch*b.features, b.batch))
	}
	epoch, k := step/b.steps, step%b.steps
	if b.shuffle && epoch != b.epoch {
		b.pcg.Seed(b.seed, uint64(epoch))
		permute(b.perm, &b.pcg)
		b.epoch = epoch
	}
	f := b.features
	for i := range b.batch {
		r := k*b.batch + i
		if b.shuffle {
			r = int(b.perm[r])
		}
		copy(x[i*f:(i+1)*f], b.split.X[r*f:(r+1)*f])
		y[i] = b.split.Y[r]
	}
}

// permute sets perm to a uniformly random permutation of 0..len(perm)-1
// drawn from src (Fisher–Yates), without allocating.
func permute(perm []int32, src *rand.PCG) {
	for i := range perm {
		perm[i] = int32(i)
	}
	for i := len(perm) - 1; i > 0; i-- {
		j := bounded(src, uint64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
}

// bounded returns a uniform value in [0, n) (Lemire's method). Written out
// rather than rand.Rand.IntN so that the order depends only on PCG.
func bounded(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}

// Prefetcher fills the next training batch in a background goroutine while
// the caller computes on the current one (double buffering). It allocates
// its two buffer pairs and a private copy of the permutation once; Next does
// not allocate. Call Close to stop the goroutine. Next and Close are for one
// goroutine (the training loop).
type Prefetcher struct {
	b  Batcher
	xs [2][]float32
	ys [2][]int32
	db doubleBuffer
}

// Prefetcher starts prefetching batches start, start+1, ... They are the
// batches Fill gives for the same steps.
func (b *Batcher) Prefetcher(start int) *Prefetcher {
	if b.steps == 0 {
		panic(fmt.Sprintf("data: Prefetcher: %d examples are fewer than one batch of %d", b.split.N, b.batch))
	}
	p := &Prefetcher{b: *b}
	p.b.epoch = -1
	if b.shuffle {
		p.b.perm = make([]int32, len(b.perm))
	}
	for i := range 2 {
		p.xs[i] = make([]float32, b.batch*b.features)
		p.ys[i] = make([]int32, b.batch)
	}
	p.db.start(start, func(step, slot int) { p.b.Fill(step, p.xs[slot], p.ys[slot]) })
	return p
}

// Next returns the batch of the next step. The buffers stay valid, and
// unchanged, until the following call to Next or Close.
func (p *Prefetcher) Next() (x []float32, y []int32) {
	slot := p.db.next("Prefetcher")
	return p.xs[slot], p.ys[slot]
}

// Close stops the background goroutine and waits for it to exit.
func (p *Prefetcher) Close() { p.db.close() }

// Eval iterates an evaluation split in order, in batches of a fixed size.
// Every example is covered once; the last batch may be partial, in which
// case it is padded with zero rows (label 0) and Batch reports how many rows
// are real so the caller can mask the rest.
type Eval struct {
	split    Split
	features int
	batch    int
	padX     []float32
	padY     []int32
}

// EvalBatches iterates split in batches of batch examples.
func EvalBatches(split Split, batch int) *Eval {
	if batch <= 0 {
		panic(fmt.Sprintf("data: EvalBatches: batch %d must be positive", batch))
	}
	e := &Eval{split: split, batch: batch}
	if split.N > 0 {
		e.features = len(split.X) / split.N
	}
	if split.N%batch != 0 {
		e.padX = make([]float32, batch*e.features)
		e.padY = make([]int32, batch)
	}
	return e
}

// Len is the number of batches, ceil(N / batch).
func (e *Eval) Len() int { return (e.split.N + e.batch - 1) / e.batch }

// Batch returns batch i (0 <= i < Len): batch*features values and batch
// labels, of which the first n rows are examples. Full batches are views
// into the split (do not modify them); the partial last batch is a padded
// copy. Batch does not allocate.
func (e *Eval) Batch(i int) (x []float32, y []int32, n int) {
	lo := i * e.batch
	n = min(e.batch, e.split.N-lo)
	if i < 0 || n <= 0 {
		panic(fmt.Sprintf("data: Eval.Batch(%d) of %d batches", i, e.Len()))
	}
	f := e.features
	if n == e.batch {
		return e.split.X[lo*f : (lo+n)*f : (lo+n)*f], e.split.Y[lo : lo+n : lo+n], n
	}
	copy(e.padX, e.split.X[lo*f:(lo+n)*f])
	copy(e.padY, e.split.Y[lo:lo+n])
	return e.padX, e.padY, n
}
