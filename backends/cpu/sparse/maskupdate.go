package sparse

import (
	"math"

	"github.com/expc-dev/expc/backends/rng"
	"github.com/expc-dev/expc/ir"
)

// MaskUpdate is the mask_update op (ir/optable_sparse.go): it rewrites a
// layer's mask (and, at the switch to dense, the weight) in place. Units
// (weights, or blocks) are ranked by key, largest first, ties to the lower
// index, and the top ir.MaskKeep(units, density) are kept (exactly N per
// group of M for N:M). Selection is a quickselect for the threshold key,
// then one pass in index order, so that ties resolve as the definition
// says without sorting.
type MaskUpdate struct {
	attrs      ir.Attrs
	rows, cols int
	pattern    string
	n, m       int
	bh, bw     int
	seed       uint64
	keys       []float64 // scratch: one key per unit
	sel        []float64 // scratch: a copy for the selection
}

// NewMaskUpdate prepares the op for a rows x cols weight.
func NewMaskUpdate(attrs ir.Attrs, rows, cols int) *MaskUpdate {
	u := &MaskUpdate{attrs: attrs, rows: rows, cols: cols, pattern: attrs.Str("pattern", "unstructured"),
		n: attrs.Int("n", 1), m: attrs.Int("m", 1), seed: uint64(attrs.Int("seed", 0))}
	if b := attrs.Ints("block"); len(b) == 2 {
		u.bh, u.bw = b[0], b[1]
	}
	return u
}

// Run applies the op for step to w, m and gen in place.
func (u *MaskUpdate) Run(w, m []float32, gen []int32, step int) {
	a := u.attrs
	if d := a.Int("dense_at", 0); d > 0 && step >= d {
		for i, v := range m {
			w[i] *= v
			m[i] = 1
		}
		gen[0] = genOf(m)
		return
	}
	first := step == 0 || gen[0] == 0
	sched := a.Str("schedule", "static")
	if !first && sched == "static" {
		return
	}
	random := first && a.Str("init", "random") == "random"
	gradual := !first && sched == "gradual"
	key := func(i int) float64 {
		switch {
		case random:
			return float64(rng.Uniform(u.seed, uint64(i)))
		case gradual:
			return math.Abs(float64(w[i] * m[i]))
		}
		return math.Abs(float64(w[i]))
	}
	density := ir.MaskDensityAt(a, step)
	switch u.pattern {
	case "nm":
		u.selectNM(m, key)
	case "block":
		u.selectBlocks(m, density, random, key)
	default:
		n := len(m)
		u.keys = growF64(u.keys, n)
		for i := range n {
			u.keys[i] = key(i)
		}
		keepTop(u.keys, ir.MaskKeep(n, density), func(i int, keep bool) { m[i] = b2f(keep) }, &u.sel)
	}
	gen[0] = genOf(m)
}

func (u *MaskUpdate) selectNM(m []float32, key func(int) float64) {
	var idx [64]int
	var ks [64]float64
	for j := 0; j < u.cols; j++ {
		for g := 0; g < u.rows; g += u.m {
			for r := range u.m {
				idx[r] = (g+r)*u.cols + j
				ks[r] = key(idx[r])
				m[idx[r]] = 0
			}
			for range u.n { // the largest remaining key, lower row on ties
				best := -1
				for r := range u.m {
					if m[idx[r]] == 0 && (best < 0 || ks[r] > ks[best]) {
						best = r
					}
				}
				m[idx[best]] = 1
			}
		}
	}
}

func (u *MaskUpdate) selectBlocks(m []float32, density float64, random bool, key func(int) float64) {
	nbc := u.cols / u.bw
	nb := (u.rows / u.bh) * nbc
	u.keys = growF64(u.keys, nb)
	for bi := range nb {
		if random {
			u.keys[bi] = float64(rng.Uniform(u.seed, uint64(bi)))
			continue
		}
		var s float64
		r0, c0 := bi/nbc*u.bh, bi%nbc*u.bw
		for r := r0; r < r0+u.bh; r++ {
			for c := c0; c < c0+u.bw; c++ {
				s += key(r*u.cols + c)
			}
		}
		u.keys[bi] = s
	}
	keepTop(u.keys, ir.MaskKeep(nb, density), func(bi int, keep bool) {
		v := b2f(keep)
		r0, c0 := bi/nbc*u.bh, bi%nbc*u.bw
		for r := r0; r < r0+u.bh; r++ {
			row := m[r*u.cols+c0 : r*u.cols+c0+u.bw]
			for c := range row {
				row[c] = v
			}
		}
	}, &u.sel)
}

// keepTop calls set(i, keep) for every unit, keeping the k with the
// largest keys (ties: lower index first).
func keepTop(keys []float64, k int, set func(i int, keep bool), scratch *[]float64) {
	n := len(keys)
	if k >= n {
		for i := range n {
			set(i, true)
		}
		return
	}
	*scratch = growF64(*scratch, n)
	s := *scratch
	copy(s, keys)
	thr := kthLargest(s, k)
	above := 0
	for _, v := range keys {
		if v > thr {
			above++
		}
	}
	ties := k - above // keys equal to thr that are kept, lowest index first
	for i, v := range keys {
		switch {
		case v > thr:
			set(i, true)
		case v == thr && ties > 0:
			set(i, true)
			ties--
		default:
			set(i, false)
		}
	}
}

// kthLargest returns the k-th largest value of s (1-based), reordering s.
func kthLargest(s []float64, k int) float64 {
	lo, hi, want := 0, len(s)-1, k-1 // want: index in descending order
	for lo < hi {
		// median of three as the pivot, then a three-way partition
		mid := lo + (hi-lo)/2
		a, b, c := s[lo], s[mid], s[hi]
		p := max(min(a, b), min(max(a, b), c))
		lt, i, gt := lo, lo, hi // [lo,lt) > p, [lt,i) == p, (gt,hi] < p
		for i <= gt {
			switch {
			case s[i] > p:
				s[lt], s[i] = s[i], s[lt]
				lt++
				i++
			case s[i] < p:
				s[i], s[gt] = s[gt], s[i]
				gt--
			default:
				i++
			}
		}
		switch {
		case want < lt:
			hi = lt - 1
		case want > gt:
			lo = gt + 1
		default:
			return p
		}
	}
	return s[want]
}

func genOf(m []float32) int32 {
	g := ir.NewMaskGen()
	for i, v := range m {
		if v != 0 {
			g = g.Add(i)
		}
	}
	return g.Value()
}

func b2f(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

func growF64(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}
