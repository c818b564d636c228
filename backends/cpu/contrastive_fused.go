package cpu

import (
	"fmt"
	"math"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/ir"
)

// contrastive_xent_fused: the contrastive loss and its gradients without
// the N×N similarity matrix.
//
// The rows are cut into blocks of `tile`; a task handles one pair of blocks
// (I, J): it computes the similarity tile S_IJ = z_I·z_Jᵀ with the GEMM (one
// worker, in cache), masks it, and folds it into per-row state:
//
//	forward   Σ_j exp(l_ij − shift_i) per row, l_ij = S_ij/τ_i; shift_i is
//	          a bound on row i's logits (|S| ≤ ‖z_i‖·max‖z_j‖), so the
//	          online log-sum-exp needs no rescaling; a row whose sum would
//	          underflow is recomputed exactly.
//	backward  the tile is recomputed, turned into dS = (softmax − 0)/τ·dloss/V
//	          and multiplied into the gradients: dz_I += dS·z_J, dz_J += dSᵀ·z_I.
//
// The positive term (one entry per row, or a class sum for supcon) is
// handled outside the tiles in O(N·d). With one tower (2N views) S is
// symmetric: a tile (I, J), I < J, serves rows I (over columns J) and rows
// J (over columns I), so each pass computes half the matrix. Tasks run in
// rounds whose pairs touch disjoint blocks (the circle method of a
// round-robin tournament; (I, I+r) for two towers), so no two workers write
// the same rows and every row's sums are added in a fixed order: the result
// does not depend on the number of workers.
//
// Memory: the unit rows (one copy when normalize is on), O(N) row state and
// a few tiles per worker: O(N·d + workers·tile²).

func init() {
	register("contrastive_xent_fused", false, newContrastiveFused)
}

type ctrFused struct {
	pool                          *pool.Pool
	dual, supcon, decoupled, norm bool
	guided                        bool
	rows, d, tile, nb, hardK, dg  int
	classes                       int

	// operands and results
	a, b, invIn, ga, gb, dloss []float32
	invScalar                  bool
	fixedInv                   float32
	labels                     []int32
	loss, da, db, dtauOut      []float32
	unused                     []float32 // the placeholder third result, written 0

	// per-row state
	za, zb       []float32 // unit rows
	na, nbn      []float64 // norms of the operand rows (normalize backward)
	inv, shift   []float32 // 1/τ_i and the exponent shift of row i
	lse, coef    []float32 // log-sum-exp; dloss/V·(1/τ_i) for the backward
	thr, gpos    []float32 // hard-negative threshold; guide similarity of the positive
	posS         []float32 // similarity of the positive (views, dual)
	sum, pos     []float64 // denominator sums; positive logit (mean for supcon)
	dtau         []float64
	valid        []bool
	topk         []float32 // hardK per row, ascending
	topn         []int32
	cls, ecls    []float64 // supcon: class sums of z and of the target weights
	clsN         []int
	ws           []*ctrWorker
	rounds       [][][2]int
	phase, round int
	g            float64 // dloss / valid rows
}

type ctrWorker struct {
	s, sr, sc, w, gt []float32 // tiles: similarities, row- and column-masked copies, weights, guide
	colAcc           []float32
}

// Phases of a job.
const (
	phNormalize = iota
	phRowPrep
	phThreshold
	phForward
	phBackward
	phFinish
	phNormGrad
)

func newContrastiveFused(b *binder) (kernel, error) {
	at := b.attrs()
	lay := ir.ContrastiveLayout(at)
	obj := at.Str("objective", "")
	t := b.inType(lay.A)
	k := &ctrFused{pool: b.pool, dual: obj == "dual", supcon: obj == "supcon", decoupled: obj == "decoupled",
		norm: at.Bool("normalize", false), guided: at.Bool("guided", false),
		rows: t.Shape[0], d: t.Shape[1], tile: at.Int("tile", 256), hardK: at.Int("hard_k", 0),
		classes: at.Int("classes", 0), a: b.in(lay.A), dloss: b.in(lay.DLoss), loss: b.out(0), da: b.out(lay.DA)}
	if k.tile <= 0 {
		return nil, fmt.Errorf("tile %d must be positive", k.tile)
	}
	R := k.rows
	k.nb = (R + k.tile - 1) / k.tile
	if k.dual {
		k.b, k.db = b.in(lay.B), b.out(lay.DB)
	}
	if lay.InvTau >= 0 {
		k.invIn, k.invScalar = b.in(lay.InvTau), b.inType(lay.InvTau).Rank() == 0
	} else {
		k.fixedInv = b.f32Attr("inv_temperature", 1)
	}
	if lay.DTau >= 0 {
		k.dtauOut = b.out(lay.DTau)
	}
	if lay.DB < 0 && lay.DTau < 0 {
		k.unused = b.out(2)
	}
	if lay.Labels >= 0 {
		k.labels = b.inI32(lay.Labels)
		if k.classes <= 0 {
			return nil, fmt.Errorf("supcon needs the number of classes")
		}
		k.cls, k.ecls, k.clsN = make([]float64, k.classes*k.d), make([]float64, k.classes*k.d), make([]int, k.classes)
	}
	if k.guided {
		k.ga = b.in(lay.GuideA)
		k.gb = k.ga
		if lay.GuideB >= 0 {
			k.gb = b.in(lay.GuideB)
		}
		k.dg = b.inType(lay.GuideA).Shape[1]
		k.gpos = make([]float32, R)
	}
	k.za, k.zb = k.a, k.b
	if k.norm {
		k.za = make([]float32, R*k.d)
		if k.dual {
			k.zb = make([]float32, R*k.d)
		}
	}
	if !k.dual {
		k.zb = k.za
	}
	k.na, k.nbn = make([]float64, R), make([]float64, R)
	k.inv, k.shift, k.lse, k.coef, k.posS = make([]float32, R), make([]float32, R), make([]float32, R), make([]float32, R), make([]float32, R)
	k.sum, k.pos, k.dtau, k.valid = make([]float64, R), make([]float64, R), make([]float64, R), make([]bool, R)
	k.thr = make([]float32, R)
	if k.hardK > 0 {
		k.topk, k.topn = make([]float32, R*k.hardK), make([]int32, R)
	}
	T := min(k.tile, R)
	perSide := k.guided || k.hardK > 0
	for range b.workers() {
		w := &ctrWorker{s: make([]float32, T*T), w: make([]float32, T*T), colAcc: make([]float32, T)}
		if perSide {
			w.sr, w.sc = make([]float32, T*T), make([]float32, T*T)
		}
		if k.guided {
			w.gt = make([]float32, T*T)
		}
		k.ws = append(k.ws, w)
	}
	k.rounds = schedulePairs(k.nb, k.dual)
	return k, nil
}

// schedulePairs cuts the block pairs into rounds of pairs that share no
// block. Two towers: every ordered pair, round r = {(I, I+r mod n)}. One
// tower: the unordered pairs I < J by the circle method (n−1 rounds for
// even n, n for odd), then one round of the diagonal blocks.
func schedulePairs(n int, dual bool) [][][2]int {
	var rounds [][][2]int
	if dual {
		for r := range n {
			var rd [][2]int
			for i := range n {
				rd = append(rd, [2]int{i, (i + r) % n})
			}
			rounds = append(rounds, rd)
		}
		return rounds
	}
	m := n + n%2 // players; m-1 is a bye when n is odd
	for r := 0; r < m-1; r++ {
		var rd [][2]int
		add := func(i, j int) {
			if i < n && j < n && i != j {
				rd = append(rd, [2]int{min(i, j), max(i, j)})
			}
		}
		add(m-1, r)
		for q := 1; q < m/2; q++ {
			add((r+q)%(m-1), (r-q+m-1)%(m-1))
		}
		if len(rd) > 0 {
			rounds = append(rounds, rd)
		}
	}
	var diag [][2]int
	for i := range n {
		diag = append(diag, [2]int{i, i})
	}
	return append(rounds, diag)
}

func (k *ctrFused) block(i int) (lo, hi int) { return i * k.tile, min((i+1)*k.tile, k.rows) }

// rowTasks is the number of row chunks for the O(N·d) phases.
func (k *ctrFused) rowTasks() int { return min(k.pool.Workers(), k.rows) }

func (k *ctrFused) rowRange(t int) (lo, hi int) {
	n := k.rowTasks()
	return k.rows * t / n, k.rows * (t + 1) / n
}

func (k *ctrFused) runPhase(ph int) {
	k.phase = ph
	switch ph {
	case phThreshold, phForward, phBackward:
		for r, rd := range k.rounds {
			k.round = r
			k.pool.RunTask(len(rd), k)
		}
	case phFinish:
		k.pool.RunTask(1, k)
	default:
		k.pool.RunTask(k.rowTasks(), k)
	}
}

func (k *ctrFused) run() error {
	for _, y := range k.labels {
		if y < 0 || int(y) >= k.classes {
			return fmt.Errorf("supcon label %d is outside [0, %d)", y, k.classes)
		}
	}
	clear(k.unused)
	k.runPhase(phNormalize)
	var nmax float64
	for i := range k.rows {
		nmax = max(nmax, k.nbn[i])
	}
	if k.norm {
		nmax = 1
	}
	for i := range k.rows {
		switch {
		case k.invIn == nil:
			k.inv[i] = k.fixedInv
		case k.invScalar:
			k.inv[i] = k.invIn[0]
		default:
			k.inv[i] = k.invIn[i]
		}
		n := k.na[i]
		if k.norm {
			n = 1
		}
		k.shift[i] = float32(float64(k.inv[i]) * n * nmax * (1 + 1e-6))
		k.thr[i] = float32(math.Inf(-1))
	}
	k.runPhase(phRowPrep)
	if k.hardK > 0 {
		clear(k.topn)
		k.runPhase(phThreshold)
		for i := range k.rows {
			if int(k.topn[i]) >= k.hardK {
				k.thr[i] = k.topk[i*k.hardK]
			}
		}
	}
	k.positives()
	clear(k.sum)
	k.runPhase(phForward)
	V := 0
	var total float64
	for i := range k.rows {
		if !k.valid[i] {
			continue
		}
		if !k.decoupled && !k.supcon {
			k.sum[i] += math.Exp(k.pos[i] - float64(k.shift[i]))
		}
		lse := float64(k.shift[i]) + math.Log(k.sum[i])
		if !(k.sum[i] >= 1e-30) || math.IsInf(lse, 0) {
			lse = k.exactLSE(i)
		}
		if math.IsInf(lse, -1) { // an empty denominator: the row does not count
			k.valid[i] = false
			continue
		}
		V++
		k.lse[i] = float32(lse)
		total += lse - k.pos[i]
	}
	clear(k.da)
	clear(k.db)
	if V == 0 {
		k.loss[0] = 0
		clear(k.dtauOut)
		return nil
	}
	k.loss[0] = float32(total / float64(V))
	k.g = float64(k.dloss[0]) / float64(V)
	for i := range k.rows {
		k.coef[i] = 0
		if k.valid[i] {
			k.coef[i] = float32(k.g * float64(k.inv[i]))
		}
	}
	clear(k.dtau)
	k.runPhase(phBackward)
	k.runPhase(phFinish)
	if k.norm {
		k.runPhase(phNormGrad)
	}
	for i := range k.dtauOut {
		k.dtauOut[i] = float32(k.dtau[i])
	}
	return nil
}

// Run is one task of the current phase.
func (k *ctrFused) Run(w, t int) {
	switch k.phase {
	case phNormalize:
		lo, hi := k.rowRange(t)
		d := k.d
		for i := lo; i < hi; i++ {
			if k.norm {
				k.na[i] = normalizeRow(k.za[i*d:(i+1)*d], k.a[i*d:(i+1)*d])
				if k.dual {
					k.nbn[i] = normalizeRow(k.zb[i*d:(i+1)*d], k.b[i*d:(i+1)*d])
				}
			} else {
				k.na[i] = rowNorm(k.za[i*d : (i+1)*d])
				k.nbn[i] = k.na[i]
				if k.dual {
					k.nbn[i] = rowNorm(k.zb[i*d : (i+1)*d])
				}
			}
		}
	case phRowPrep:
		lo, hi := k.rowRange(t)
		for i := lo; i < hi; i++ {
			k.valid[i] = true
			if k.supcon {
				continue
			}
			p := positiveOf(k.dual, i, k.rows)
			k.posS[i] = dot32(k.za[i*k.d:(i+1)*k.d], k.zb[p*k.d:(p+1)*k.d])
			if k.guided {
				k.gpos[i] = dot32(k.ga[i*k.dg:(i+1)*k.dg], k.gb[p*k.dg:(p+1)*k.dg])
			}
		}
	case phThreshold, phForward, phBackward:
		pr := k.rounds[k.round][t]
		k.tilePass(k.ws[w], pr[0], pr[1])
	case phFinish:
		k.finish()
	case phNormGrad:
		lo, hi := k.rowRange(t)
		d := k.d
		for i := lo; i < hi; i++ {
			normalizeGradRow(k.da[i*d:(i+1)*d], k.da[i*d:(i+1)*d], k.a[i*d:(i+1)*d], k.na[i])
			if k.dual {
				normalizeGradRow(k.db[i*d:(i+1)*d], k.db[i*d:(i+1)*d], k.b[i*d:(i+1)*d], k.nbn[i])
			}
		}
	}
}

func dot32(x, y []float32) float32 {
	y = y[:len(x)]
	var s float64
	for i, v := range x {
		s += float64(v) * float64(y[i])
	}
	return float32(s)
}

// positives computes each row's positive logit (supcon: the mean over its
// positives, from class sums) and which rows count.
func (k *ctrFused) positives() {
	d := k.d
	if !k.supcon {
		for i := range k.rows {
			k.pos[i] = float64(k.inv[i]) * float64(k.posS[i])
		}
		return
	}
	clear(k.cls)
	clear(k.clsN)
	for i, y := range k.labels {
		k.clsN[y]++
		c := k.cls[int(y)*d : int(y+1)*d]
		for j, v := range k.za[i*d : (i+1)*d] {
			c[j] += float64(v)
		}
	}
	for i, y := range k.labels {
		n := k.clsN[y] - 1
		k.valid[i] = n > 0
		if n <= 0 {
			k.pos[i] = 0
			continue
		}
		c := k.cls[int(y)*d : int(y+1)*d]
		z := k.za[i*d : (i+1)*d]
		var s float64
		for j, v := range z {
			s += float64(v) * (c[j] - float64(v))
		}
		k.pos[i] = float64(k.inv[i]) * s / float64(n)
	}
}

// tilePass does one phase's work on the block pair (bi, bj).
func (k *ctrFused) tilePass(w *ctrWorker, bi, bj int) {
	i0, i1 := k.block(bi)
	j0, j1 := k.block(bj)
	ti, tj, d := i1-i0, j1-j0, k.d
	colSide := !k.dual && bi != bj
	s := w.s[:ti*tj]
	gemm.Sgemm(nil, false, true, ti, tj, d, 1, k.za[i0*d:], d, k.zb[j0*d:], d, 0, s, tj)
	// Entries in no denominator: the diagonal of one tower, and the
	// positives that are handled outside the tiles.
	for i := i0; i < i1; i++ {
		if !k.dual && i >= j0 && i < j1 {
			s[(i-i0)*tj+i-j0] = maskedSim
		}
		if k.supcon {
			continue
		}
		if p := positiveOf(k.dual, i, k.rows); p >= j0 && p < j1 {
			s[(i-i0)*tj+p-j0] = maskedSim
		}
	}
	sr, sc := s, s
	thresholds := k.hardK > 0 && k.phase != phThreshold
	if k.guided || thresholds {
		sr, sc = w.sr[:ti*tj], w.sc[:ti*tj]
		copy(sr, s)
		if colSide {
			copy(sc, s)
		}
		var gt []float32
		if k.guided {
			gt = w.gt[:ti*tj]
			gemm.Sgemm(nil, false, true, ti, tj, k.dg, 1, k.ga[i0*k.dg:], k.dg, k.gb[j0*k.dg:], k.dg, 0, gt, tj)
		}
		for i := range ti {
			for j := range tj {
				v := s[i*tj+j]
				if v == maskedSim {
					continue
				}
				if gt != nil && gt[i*tj+j] > k.gpos[i0+i] || thresholds && v < k.thr[i0+i] {
					sr[i*tj+j] = maskedSim
				}
				if colSide && (gt != nil && gt[i*tj+j] > k.gpos[j0+j] || thresholds && v < k.thr[j0+j]) {
					sc[i*tj+j] = maskedSim
				}
			}
		}
	}
	switch k.phase {
	case phThreshold:
		for i := range ti {
			for j := range tj {
				if v := sr[i*tj+j]; v != maskedSim {
					k.insertTop(i0+i, v)
				}
				if colSide {
					if v := sc[i*tj+j]; v != maskedSim {
						k.insertTop(j0+j, v)
					}
				}
			}
		}
	case phForward:
		for i := range ti {
			if r := i0 + i; k.valid[r] {
				k.sum[r] += expRowSum(sr[i*tj:(i+1)*tj], k.inv[r], k.shift[r])
			}
		}
		if colSide {
			acc := w.colAcc[:tj]
			clear(acc)
			for i := range ti {
				expColSum(acc, sc[i*tj:(i+1)*tj], k.inv[j0:j1], k.shift[j0:j1])
			}
			for j, v := range acc {
				k.sum[j0+j] += float64(v)
			}
		}
	case phBackward:
		W := w.w[:ti*tj]
		for i := range ti {
			r := i0 + i
			dt := expRowW(W[i*tj:(i+1)*tj], sr[i*tj:(i+1)*tj], k.inv[r], k.lse[r], k.coef[r])
			k.dtau[r] += dt / float64(k.inv[r])
		}
		if colSide {
			acc := w.colAcc[:tj]
			clear(acc)
			for i := range ti {
				expColW(W[i*tj:(i+1)*tj], acc, sc[i*tj:(i+1)*tj], k.inv[j0:j1], k.lse[j0:j1], k.coef[j0:j1])
			}
			for j, v := range acc {
				k.dtau[j0+j] += float64(v) / float64(k.inv[j0+j])
			}
		}
		da, db := k.da, k.db
		if !k.dual {
			db = da
		}
		// dz_I += W·z_J; dz_J += Wᵀ·z_I (for a diagonal tile both land in I).
		gemm.Sgemm(nil, false, false, ti, d, tj, 1, W, tj, k.zb[j0*d:], d, 1, da[i0*d:], d)
		gemm.Sgemm(nil, true, false, tj, d, ti, 1, W, tj, k.za[i0*d:], d, 1, db[j0*d:], d)
	}
}

// insertTop keeps row r's hardK largest negative similarities, ascending.
func (k *ctrFused) insertTop(r int, v float32) {
	K := k.hardK
	top := k.topk[r*K : (r+1)*K]
	n := int(k.topn[r])
	if n == K {
		if v <= top[0] {
			return
		}
		i := 0
		for i+1 < K && top[i+1] < v {
			top[i] = top[i+1]
			i++
		}
		top[i] = v
		return
	}
	i := n
	for i > 0 && top[i-1] > v {
		top[i] = top[i-1]
		i--
	}
	top[i] = v
	k.topn[r]++
}

// exactLSE recomputes row i's log-sum-exp in float64 with a running max,
// for a row whose shifted sum underflowed (a very low temperature).
func (k *ctrFused) exactLSE(i int) float64 {
	d := k.d
	zi := k.za[i*d : (i+1)*d]
	p := -1
	if !k.supcon {
		p = positiveOf(k.dual, i, k.rows)
	}
	inv := float64(k.inv[i])
	mx, se := math.Inf(-1), 0.0
	add := func(l float64) {
		if l > mx {
			se = se*math.Exp(mx-l) + 1
			mx = l
		} else {
			se += math.Exp(l - mx)
		}
	}
	for j := range k.rows {
		if !k.dual && j == i {
			continue
		}
		s := dot32(zi, k.zb[j*d:(j+1)*d])
		if j == p {
			if !k.decoupled {
				add(k.pos[i])
			}
			continue
		}
		if k.guided && dot32(k.ga[i*k.dg:(i+1)*k.dg], k.gb[j*k.dg:(j+1)*k.dg]) > k.gpos[i] || s < k.thr[i] {
			continue
		}
		add(inv * float64(s))
	}
	if se == 0 {
		return math.Inf(-1)
	}
	return mx + math.Log(se)
}

// finish adds the positive terms of the gradient, which the tiles left out:
// for the positional objectives −dloss/V·(1 − [in denominator]·softmax_pos)/τ_i
// on the pair (i, positive), for supcon the class-sum form of
// −dloss/V/τ_i/|P(i)|·Σ_{p∈P(i)} S_ip.
func (k *ctrFused) finish() {
	d := k.d
	da, db := k.da, k.db
	if !k.dual {
		db = da
	}
	if !k.supcon {
		for i := range k.rows {
			if !k.valid[i] {
				continue
			}
			p := positiveOf(k.dual, i, k.rows)
			e := 0.0
			if !k.decoupled {
				e = math.Exp(k.pos[i] - float64(k.lse[i]))
			}
			c := float32(k.g * float64(k.inv[i]) * (e - 1))
			axpy(da[i*d:(i+1)*d], k.zb[p*d:(p+1)*d], c)
			axpy(db[p*d:(p+1)*d], k.za[i*d:(i+1)*d], c)
			k.dtau[i] += k.g * (e - 1) * float64(k.posS[i])
		}
		return
	}
	clear(k.ecls)
	t := make64(k.rows, func(i int) float64 {
		if !k.valid[i] {
			return 0
		}
		return k.g * float64(k.inv[i]) / float64(k.clsN[k.labels[i]]-1)
	}, k.sum) // k.sum is free after the forward: reuse it for the weights
	for i, y := range k.labels {
		e := k.ecls[int(y)*d : int(y+1)*d]
		for j, v := range k.za[i*d : (i+1)*d] {
			e[j] += t[i] * float64(v)
		}
	}
	for i, y := range k.labels {
		c, e := k.cls[int(y)*d:int(y+1)*d], k.ecls[int(y)*d:int(y+1)*d]
		z, g := k.za[i*d:(i+1)*d], da[i*d:(i+1)*d]
		var s float64
		for j, v := range z {
			zj := float64(v)
			s += zj * (c[j] - zj)
			g[j] -= float32(t[i]*(c[j]-zj) + e[j] - t[i]*zj)
		}
		if k.valid[i] {
			k.dtau[i] -= k.g / float64(k.clsN[y]-1) * s
		}
	}
}

func axpy(y, x []float32, c float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] += c * v
	}
}

// make64 fills dst[:n] with f(i) and returns it.
func make64(n int, f func(int) float64, dst []float64) []float64 {
	dst = dst[:n]
	for i := range dst {
		dst[i] = f(i)
	}
	return dst
}
