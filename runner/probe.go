package runner

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
	"github.com/expc-dev/expc/data"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

// probeEvaluator measures a contrastive model's representation. The eval
// program maps inputs to encoder features and normalised embeddings; on the
// features of the whole training split (no augmentation) it fits
//
//   - kNN: cosine similarity on L2-normalised features, the k nearest
//     training examples vote with weight exp(s/0.07) (Wu et al. 2018);
//   - a linear probe: multinomial logistic regression on the normalised,
//     then standardised features, mini-batch SGD with momentum 0.9 and a
//     cosine learning rate, epochs and lr from the plan;
//
// and scores both on the evaluation split. On two augmented views of up to
// 1024 evaluation examples it measures alignment E‖z₁−z₂‖² and uniformity
// log E exp(−2‖z_i−z_j‖²) of the embeddings (Wang & Isola 2020).
// eval_loss is the linear probe's cross-entropy; eval_accuracy is the
// accuracy of the probe the plan names.
type probeEvaluator struct {
	cfg         ir.ProbePlan
	train, test data.Split
	classes     int
	eb, f, h, e int
	x, feat     []float32 // the eval program's bindings
	emb         []float32
	trF, teF    []float32 // features of the splits
	views       *data.Views
	vx          []float32
	vy          []int32
	m           int // examples for alignment and uniformity
	p           *pool.Pool
	last        reprMetrics
}

// reprMetrics is one evaluation's representation metrics.
type reprMetrics struct {
	linear, knn, probeLoss, align, uniform float64
}

func newProbeEvaluator(plan *ir.Plan, prog *ir.Program, exe backends.Executable, set *data.Set) (*probeEvaluator, error) {
	c := plan.Contrastive
	eb, f := plan.Data.EvalBatch, plan.Data.Features
	if eb <= 0 {
		eb = plan.Data.Batch
	}
	e := &probeEvaluator{cfg: c.Probe, train: set.Train, test: set.Eval, classes: max(plan.Data.Classes, 2),
		eb: eb, f: f, h: c.Features, e: c.Embedding, p: pool.Default()}
	var err error
	if e.x, err = f32View(plan, prog, exe, "x", int64(eb)*int64(f)); err != nil {
		return nil, err
	}
	if e.feat, err = f32View(plan, prog, exe, "features", int64(eb)*int64(c.Features)); err != nil {
		return nil, err
	}
	if e.emb, err = f32View(plan, prog, exe, "embedding", int64(eb)*int64(c.Embedding)); err != nil {
		return nil, err
	}
	e.trF, e.teF = make([]float32, e.train.N*e.h), make([]float32, e.test.N*e.h)
	var ds schema.Dataset
	if err := json.Unmarshal(plan.Data.Dataset, &ds); err == nil && ds.Views != nil {
		e.m = min(1024, e.test.N)
		if e.m >= 2 {
			if e.views, err = data.NewViews(e.test, f, e.m, false, uint64(plan.Schedule.Seed), *ds.Views, set.Norm); err != nil {
				return nil, err
			}
			e.vx, e.vy = make([]float32, 2*e.m*f), make([]int32, 2*e.m)
		}
	}
	return e, nil
}

func (e *probeEvaluator) run(exe backends.Executable) (loss, acc float64, err error) {
	if err := e.extract(exe, e.train.X, e.train.N, e.feat, e.h, e.trF); err != nil {
		return 0, 0, err
	}
	if err := e.extract(exe, e.test.X, e.test.N, e.feat, e.h, e.teF); err != nil {
		return 0, 0, err
	}
	var m reprMetrics
	unitRows(e.trF, e.h)
	unitRows(e.teF, e.h)
	if m.knn, err = e.knn(); err != nil {
		return 0, 0, err
	}
	m.linear, m.probeLoss = e.linearProbe()
	if e.views != nil {
		e.views.Fill(0, e.vx, e.vy, nil)
		z := make([]float32, 2*e.m*e.e)
		if err := e.extract(exe, e.vx, 2*e.m, e.emb, e.e, z); err != nil {
			return 0, 0, err
		}
		m.align, m.uniform = alignUniform(z[:e.m*e.e], z[e.m*e.e:], e.m, e.e, e.p)
	}
	e.last = m
	acc = m.linear
	if e.cfg.Kind == "knn" {
		acc = m.knn
	}
	return m.probeLoss, acc, nil
}

// extract runs the eval program over the n rows of x and copies its output
// (width w, bound at out) into dst.
func (e *probeEvaluator) extract(exe backends.Executable, x []float32, n int, out []float32, w int, dst []float32) error {
	for lo := 0; lo < n; lo += e.eb {
		rows := min(e.eb, n-lo)
		copy(e.x, x[lo*e.f:(lo+rows)*e.f])
		clear(e.x[rows*e.f:])
		if err := exe.Run("eval"); err != nil {
			return fmt.Errorf("evaluation rows %d..%d: %w", lo, lo+rows, err)
		}
		copy(dst[lo*w:(lo+rows)*w], out[:rows*w])
	}
	return nil
}

func unitRows(x []float32, d int) {
	for i := 0; i+d <= len(x); i += d {
		var s float64
		for _, v := range x[i : i+d] {
			s += float64(v) * float64(v)
		}
		inv := float32(1 / math.Max(math.Sqrt(s), 1e-12))
		for j := i; j < i+d; j++ {
			x[j] *= inv
		}
	}
}

// knn is the weighted k-nearest-neighbour accuracy on the evaluation split.
func (e *probeEvaluator) knn() (float64, error) {
	const qb, tb, temp = 256, 4096, 0.07
	k := max(1, min(e.cfg.K, e.train.N))
	sims := make([]float32, qb*tb)
	topS, topY := make([]float32, qb*k), make([]int32, qb*k)
	votes := make([]float64, e.classes)
	correct := 0
	for q0 := 0; q0 < e.test.N; q0 += qb {
		nq := min(qb, e.test.N-q0)
		for i := range topS[:nq*k] {
			topS[i], topY[i] = float32(math.Inf(-1)), -1
		}
		for t0 := 0; t0 < e.train.N; t0 += tb {
			nt := min(tb, e.train.N-t0)
			gemm.Sgemm(e.p, false, true, nq, nt, e.h, 1, e.teF[q0*e.h:], e.h, e.trF[t0*e.h:], e.h, 0, sims, nt)
			for i := range nq {
				ts, ty := topS[i*k:(i+1)*k], topY[i*k:(i+1)*k]
				for j, s := range sims[i*nt : (i+1)*nt] {
					if s <= ts[0] {
						continue
					}
					p := 0 // ts ascending: drop the smallest, insert s
					for p+1 < k && ts[p+1] < s {
						ts[p], ty[p] = ts[p+1], ty[p+1]
						p++
					}
					ts[p], ty[p] = s, e.train.Y[t0+j]
				}
			}
		}
		for i := range nq {
			clear(votes)
			for j := range k {
				if y := topY[i*k+j]; y >= 0 && int(y) < len(votes) {
					votes[y] += math.Exp(float64(topS[i*k+j]) / temp)
				}
			}
			best := 0
			for c, v := range votes {
				if v > votes[best] {
					best = c
				}
			}
			if int32(best) == e.test.Y[q0+i] {
				correct++
			}
		}
	}
	if e.test.N == 0 {
		return 0, nil
	}
	return float64(correct) / float64(e.test.N), nil
}

// linearProbe fits softmax regression on the training features and returns
// the evaluation split's accuracy and mean cross-entropy.
func (e *probeEvaluator) linearProbe() (acc, loss float64) {
	H, C := e.h, e.classes
	mean, std := make([]float64, H), make([]float64, H)
	for i := range e.train.N {
		for j, v := range e.trF[i*H : (i+1)*H] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(max(e.train.N, 1))
	}
	for i := range e.train.N {
		for j, v := range e.trF[i*H : (i+1)*H] {
			d := float64(v) - mean[j]
			std[j] += d * d
		}
	}
	for j := range std {
		std[j] = math.Max(math.Sqrt(std[j]/float64(max(e.train.N, 1))), 1e-6)
	}
	for _, x := range [][]float32{e.trF, e.teF} {
		for i := 0; i+H <= len(x); i += H {
			for j := range H {
				x[i+j] = float32((float64(x[i+j]) - mean[j]) / std[j])
			}
		}
	}
	const B = 512
	w, vw := make([]float32, H*C), make([]float32, H*C)
	b, vb := make([]float32, C), make([]float32, C)
	xb, logits, gw := make([]float32, B*H), make([]float32, B*C), make([]float32, H*C)
	yb := make([]int32, B)
	perm := make([]int, e.train.N)
	for i := range perm {
		perm[i] = i
	}
	r := rand.New(rand.NewPCG(1, 2))
	epochs := max(e.cfg.Epochs, 1)
	steps, step := epochs*((e.train.N+B-1)/B), 0
	for range epochs {
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		for lo := 0; lo < e.train.N; lo += B {
			n := min(B, e.train.N-lo)
			for i := range n {
				copy(xb[i*H:(i+1)*H], e.trF[perm[lo+i]*H:(perm[lo+i]+1)*H])
				yb[i] = e.train.Y[perm[lo+i]]
			}
			gemm.Sgemm(e.p, false, false, n, C, H, 1, xb, H, w, C, 0, logits, C)
			gb := softmaxGrad(logits[:n*C], b, yb[:n], C)
			gemm.Sgemm(e.p, true, false, H, C, n, 1, xb, H, logits, C, 0, gw, C)
			lr := float32(e.cfg.LR * 0.5 * (1 + math.Cos(math.Pi*float64(step)/float64(steps))))
			for i := range w {
				vw[i] = 0.9*vw[i] + gw[i] + 1e-4*w[i]
				w[i] -= lr * vw[i]
			}
			for c := range b {
				vb[c] = 0.9*vb[c] + float32(gb[c])
				b[c] -= lr * vb[c]
			}
			step++
		}
	}
	correct := 0
	for lo := 0; lo < e.test.N; lo += B {
		n := min(B, e.test.N-lo)
		gemm.Sgemm(e.p, false, false, n, C, H, 1, e.teF[lo*H:], H, w, C, 0, logits, C)
		for i := range n {
			row := logits[i*C : (i+1)*C]
			mx, arg := math.Inf(-1), 0
			for c, v := range row {
				if v += b[c]; float64(v) > mx {
					mx, arg = float64(v), c
				}
				row[c] = v
			}
			var se float64
			for _, v := range row {
				se += math.Exp(float64(v) - mx)
			}
			y := e.test.Y[lo+i]
			loss += mx + math.Log(se) - float64(row[y])
			if arg == int(y) {
				correct++
			}
		}
	}
	if e.test.N == 0 {
		return 0, 0
	}
	return float64(correct) / float64(e.test.N), loss / float64(e.test.N)
}

// softmaxGrad turns logits (+bias) into (softmax − onehot)/n in place and
// returns the bias gradient.
func softmaxGrad(logits, b []float32, y []int32, C int) []float64 {
	n := len(y)
	gb := make([]float64, C)
	for i := range n {
		row := logits[i*C : (i+1)*C]
		mx := math.Inf(-1)
		for c := range row {
			row[c] += b[c]
			mx = math.Max(mx, float64(row[c]))
		}
		var se float64
		for _, v := range row {
			se += math.Exp(float64(v) - mx)
		}
		for c, v := range row {
			p := math.Exp(float64(v)-mx) / se
			if c == int(y[i]) {
				p--
			}
			row[c] = float32(p / float64(n))
			gb[c] += p / float64(n)
		}
	}
	return gb
}

// alignUniform: alignment E‖a_i − b_i‖² over the pairs and uniformity
// log E_{i≠j} exp(−2‖a_i − a_j‖²), for unit rows (‖x−y‖² = 2 − 2x·y).
func alignUniform(a, b []float32, m, d int, p *pool.Pool) (align, uniform float64) {
	for i := range m {
		var s float64
		for j := range d {
			t := float64(a[i*d+j] - b[i*d+j])
			s += t * t
		}
		align += s
	}
	align /= float64(m)
	g := make([]float32, m*m)
	gemm.Sgemm(p, false, true, m, m, d, 1, a, d, a, d, 0, g, m)
	var s float64
	for i := range m {
		for j := range m {
			if i != j {
				s += math.Exp(-2 * (2 - 2*float64(g[i*m+j])))
			}
		}
	}
	return align, math.Log(s / float64(m*(m-1)))
}

// representation appends the probe's metrics line:
// {"step","linear_accuracy","knn_accuracy","probe_loss","alignment","uniformity"}.
func (m *metricsLog) representation(step int, r reprMetrics) error {
	b := append(m.buf[:0], `{"step":`...)
	b = strconv.AppendInt(b, int64(step), 10)
	for _, kv := range []struct {
		k string
		v float64
	}{{"linear_accuracy", r.linear}, {"knn_accuracy", r.knn}, {"probe_loss", r.probeLoss}, {"alignment", r.align}, {"uniformity", r.uniform}} {
		b = append(b, `,"`+kv.k+`":`...)
		b = appendJSONFloat(b, kv.v, 32)
	}
	return m.write(append(b, "}\n"...))
}
