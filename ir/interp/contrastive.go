package interp

import (
	"math"
	"slices"

	"github.com/expc-dev/expc/ir"
)

// Float64 references of the contrastive ops (see ir/optable_contrastive.go).
// contrastive_xent_fused is computed the unfused way, from the same helpers,
// so that the fused kernel is checked against the graph it replaces.

const normEps = 1e-12

func init() {
	ops["l2_normalize"] = func(_ *ir.Instr, a, o []*Tensor) {
		rows, d := a[0].Shape[0], a[0].Shape[1]
		normalizeRows(a[0].F, o[0].F, rows, d)
	}
	ops["l2_normalize_grad"] = func(_ *ir.Instr, a, o []*Tensor) {
		rows, d := a[1].Shape[0], a[1].Shape[1]
		normalizeGrad(a[0].F, a[1].F, o[0].F, rows, d)
	}
	ops["row_scale"] = func(_ *ir.Instr, a, o []*Tensor) {
		c, scalar := a[0].Shape[1], len(a[1].Shape) == 0
		for i, x := range a[0].F {
			s := a[1].F[0]
			if !scalar {
				s = a[1].F[i/c]
			}
			o[0].F[i] = x * s
		}
	}
	ops["contrastive_mask"] = func(in *ir.Instr, a, o []*Tensor) {
		var labels []int32
		var guide []float64
		next := 1
		if in.Attrs.Str("objective", "") == "supcon" {
			labels = a[next].I
			next++
		}
		if in.Attrs.Bool("guided", false) {
			guide = a[next].F
		}
		ContrastiveMask(in.Attrs.Str("objective", ""), in.Attrs.Int("hard_k", 0), a[0].F, labels, guide,
			a[0].Shape[0], a[0].Shape[1], o[0].F, o[1].F)
	}
	ops["soft_xent"] = func(_ *ir.Instr, a, o []*Tensor) {
		o[0].F[0] = SoftXent(a[0].F, a[1].F, a[2].F, a[0].Shape[0], a[0].Shape[1], 0, nil)
	}
	ops["soft_xent_grad"] = func(_ *ir.Instr, a, o []*Tensor) {
		SoftXent(a[0].F, a[1].F, a[2].F, a[0].Shape[0], a[0].Shape[1], a[3].F[0], o[0].F)
	}
	ops["gather"] = func(_ *ir.Instr, a, o []*Tensor) {
		for i, k := range a[1].I {
			if k >= 0 && int(k) < len(a[0].F) {
				o[0].F[i] = a[0].F[k]
			}
		}
	}
	ops["scatter_add"] = func(_ *ir.Instr, a, o []*Tensor) {
		for i, k := range a[1].I {
			if k >= 0 && int(k) < len(o[0].F) {
				o[0].F[k] += a[0].F[i]
			}
		}
	}
	ops["contrastive_xent_fused"] = contrastiveFused
}

func normalizeRows(x, y []float64, rows, d int) {
	for r := range rows {
		row := x[r*d : (r+1)*d]
		var ss float64
		for _, v := range row {
			ss += v * v
		}
		n := math.Max(math.Sqrt(ss), normEps)
		for j, v := range row {
			y[r*d+j] = v / n
		}
	}
}

// normalizeGrad: for y = x/‖x‖, dx = (dy − y·(y·dy))/‖x‖; below the
// clamp y = x/eps is linear and dx = dy/eps.
func normalizeGrad(dy, x, dx []float64, rows, d int) {
	for r := range rows {
		xr, gr := x[r*d:(r+1)*d], dy[r*d:(r+1)*d]
		var ss float64
		for _, v := range xr {
			ss += v * v
		}
		n := math.Sqrt(ss)
		if n <= normEps {
			for j := range gr {
				dx[r*d+j] = gr[j] / normEps
			}
			continue
		}
		var dot float64
		for j := range xr {
			dot += xr[j] / n * gr[j]
		}
		for j := range xr {
			dx[r*d+j] = (gr[j] - xr[j]/n*dot) / n
		}
	}
}

// Positive returns row i's positive column for the positional objectives:
// the other view (i ± rows/2) or, for dual, column i.
func Positive(objective string, i, rows int) int {
	if objective == "dual" {
		return i
	}
	return (i + rows/2) % rows
}

// ContrastiveMask fills m (denominator membership) and p (positive weights)
// for similarities s[rows, cols]:
//
//   - supcon: positives are the other rows with the same label, weighted
//     1/count; the denominator is every row but i itself.
//   - otherwise the positive is Positive(i); it is in the denominator unless
//     decoupled. The negatives are every other column except i itself (2N
//     views). With guide similarities g, a negative j is dropped when
//     g[i,j] > g[i,positive] (the guide rates it closer than the positive).
//     With hardK > 0 only the negatives whose similarity is at least the
//     hardK-th largest remaining one stay (ties stay together).
func ContrastiveMask(objective string, hardK int, s []float64, labels []int32, g []float64, rows, cols int, m, p []float64) {
	clear(m)
	clear(p)
	var kept []float64
	for i := range rows {
		mi, pi := m[i*cols:(i+1)*cols], p[i*cols:(i+1)*cols]
		if objective == "supcon" {
			n := 0
			for j := range cols {
				if j != i {
					mi[j] = 1
					if labels[j] == labels[i] {
						n++
					}
				}
			}
			for j := range cols {
				if j != i && labels[j] == labels[i] {
					pi[j] = 1 / float64(n)
				}
			}
			continue
		}
		pos := Positive(objective, i, rows)
		pi[pos] = 1
		if objective != "decoupled" {
			mi[pos] = 1
		}
		kept = kept[:0]
		for j := range cols {
			if j == pos || (objective != "dual" && j == i) {
				continue
			}
			if g != nil && g[i*cols+j] > g[i*cols+pos] {
				continue
			}
			mi[j] = 1
			kept = append(kept, s[i*cols+j])
		}
		if hardK > 0 && len(kept) > hardK {
			slices.Sort(kept)
			thr := kept[len(kept)-hardK]
			for j := range cols {
				if j != pos && mi[j] == 1 && s[i*cols+j] < thr {
					mi[j] = 0
				}
			}
		}
	}
}

// SoftXent returns the mean over rows with a positive and a non-empty
// denominator of
// log Σ_j m_ij e^{l_ij} − Σ_j p_ij l_ij and, when grad is not nil, writes
// dloss/rows · (m∘softmax_m(l) − p) into it. m holds non-negative weights
// (0/1 from contrastive_mask).
func SoftXent(l, m, p []float64, rows, cols int, dloss float64, grad []float64) float64 {
	// A row counts when it has a positive and a non-empty denominator.
	counts := func(i int) bool { return sum(p[i*cols:(i+1)*cols]) > 0 && sum(m[i*cols:(i+1)*cols]) > 0 }
	valid := 0
	for i := range rows {
		if counts(i) {
			valid++
		}
	}
	if grad != nil {
		clear(grad)
	}
	if valid == 0 {
		return 0
	}
	var total float64
	for i := range rows {
		li, mi, pi := l[i*cols:(i+1)*cols], m[i*cols:(i+1)*cols], p[i*cols:(i+1)*cols]
		if !counts(i) {
			continue
		}
		mx := math.Inf(-1)
		for j, v := range li {
			if mi[j] != 0 {
				mx = math.Max(mx, v)
			}
		}
		var se, pos float64
		for j, v := range li {
			if mi[j] != 0 {
				se += mi[j] * math.Exp(v-mx)
			}
			pos += pi[j] * v
		}
		lse := mx + math.Log(se)
		total += lse - pos
		if grad != nil {
			for j, v := range li {
				var sm float64
				if mi[j] != 0 {
					sm = mi[j] * math.Exp(v-lse)
				}
				grad[i*cols+j] = dloss / float64(valid) * (sm - pi[j])
			}
		}
	}
	return total / float64(valid)
}

func sum(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s
}

// contrastiveFused evaluates the fused op exactly as the unfused graph
// would: normalise, similarities, temperature, mask, soft_xent and the
// backward of each.
func contrastiveFused(in *ir.Instr, a, o []*Tensor) {
	at := in.Attrs
	lay := ir.ContrastiveLayout(at)
	obj := at.Str("objective", "")
	rows, d := a[lay.A].Shape[0], a[lay.A].Shape[1]
	norm := at.Bool("normalize", false)
	unit := func(x *Tensor) []float64 {
		if !norm {
			return x.F
		}
		z := make([]float64, len(x.F))
		normalizeRows(x.F, z, rows, d)
		return z
	}
	za := unit(a[lay.A])
	zb := za
	if lay.B >= 0 {
		zb = unit(a[lay.B])
	}
	invTau := make([]float64, rows)
	for i := range invTau {
		switch {
		case lay.InvTau < 0:
			invTau[i] = at.Float("inv_temperature", 1)
		case len(a[lay.InvTau].Shape) == 0:
			invTau[i] = a[lay.InvTau].F[0]
		default:
			invTau[i] = a[lay.InvTau].F[i]
		}
	}
	s := matmulNT(za, zb, rows, rows, d)
	var labels []int32
	if lay.Labels >= 0 {
		labels = a[lay.Labels].I
	}
	var g []float64
	if lay.GuideA >= 0 {
		ga := a[lay.GuideA]
		gb := ga
		if lay.GuideB >= 0 {
			gb = a[lay.GuideB]
		}
		g = matmulNT(ga.F, gb.F, rows, rows, ga.Shape[1])
	}
	m, p := make([]float64, rows*rows), make([]float64, rows*rows)
	ContrastiveMask(obj, at.Int("hard_k", 0), s, labels, g, rows, rows, m, p)
	l := make([]float64, rows*rows)
	for i := range l {
		l[i] = s[i] * invTau[i/rows]
	}
	dl := make([]float64, rows*rows)
	o[0].F[0] = SoftXent(l, m, p, rows, rows, a[lay.DLoss].F[0], dl)
	// dS = dL·invτ (rows); dza = dS·zb, dzb = dSᵀ·za; dinvτ_i = Σ_j dL_ij S_ij.
	dza, dzb := make([]float64, rows*d), make([]float64, rows*d)
	dtau := make([]float64, rows)
	for i := range rows {
		for j := range rows {
			ds := dl[i*rows+j] * invTau[i]
			dtau[i] += dl[i*rows+j] * s[i*rows+j]
			for k := range d {
				dza[i*d+k] += ds * zb[j*d+k]
				dzb[j*d+k] += ds * za[i*d+k]
			}
		}
	}
	if lay.B < 0 { // one tower: both sides are gradients of the same rows
		for i := range dza {
			dza[i] += dzb[i]
		}
	}
	out := func(dz []float64, x *Tensor, dst []float64) {
		if norm {
			normalizeGrad(dz, x.F, dst, rows, d)
		} else {
			copy(dst, dz)
		}
	}
	out(dza, a[lay.A], o[lay.DA].F)
	if lay.DB >= 0 {
		out(dzb, a[lay.B], o[lay.DB].F)
	}
	if lay.DTau >= 0 {
		copy(o[lay.DTau].F, dtau)
	}
}

func matmulNT(a, b []float64, m, n, k int) []float64 {
	c := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += a[i*k+p] * b[j*k+p]
			}
			c[i*n+j] = s
		}
	}
	return c
}
