package interp

import (
	"math"

	"github.com/expc-dev/expc/ir"
)

// Float64 references of the sequence-model and regression-head ops
// (ir/optable_seq.go).

func init() {
	ops["token_ids"] = func(in *ir.Instr, a, o []*Tensor) {
		x, shift := a[0], in.Attrs.Int("shift", 0)
		b, w := x.Shape[0], x.Shape[1]
		t := w - 1
		for r := 0; r < b; r++ {
			for i := 0; i < t; i++ {
				id := int32(x.F[r*w+shift+i])
				if len(a) == 2 && a[1].I[r] < 0 {
					id = -1
				}
				o[0].I[r*t+i] = id
			}
		}
	}
	ops["embed"] = func(_ *ir.Instr, a, o []*Tensor) {
		ids, table, pos := a[0].I, a[1], a[2]
		d, T := table.Shape[1], pos.Shape[0]
		for n, id := range ids {
			for c := 0; c < d; c++ {
				v := pos.F[(n%T)*d+c]
				if id >= 0 && int(id) < table.Shape[0] {
					v += table.F[int(id)*d+c]
				}
				o[0].F[n*d+c] = v
			}
		}
	}
	ops["embed_grad"] = func(_ *ir.Instr, a, o []*Tensor) {
		dy, ids := a[0], a[1].I
		d, V, T := dy.Shape[1], o[0].Shape[0], o[1].Shape[0]
		for n, id := range ids {
			for c := 0; c < d; c++ {
				g := dy.F[n*d+c]
				o[1].F[(n%T)*d+c] += g
				if id >= 0 && int(id) < V {
					o[0].F[int(id)*d+c] += g
				}
			}
		}
	}
	ops["layer_norm"] = func(in *ir.Instr, a, o []*Tensor) {
		x, g, b := a[0], a[1].F, a[2].F
		n, d := x.Shape[0], x.Shape[1]
		eps := in.Attrs.Float("eps", 1e-5)
		for r := 0; r < n; r++ {
			xh, _ := normRow(x.F[r*d:(r+1)*d], eps)
			for c := range xh {
				o[0].F[r*d+c] = xh[c]*g[c] + b[c]
			}
		}
	}
	ops["layer_norm_grad"] = func(in *ir.Instr, a, o []*Tensor) {
		dy, x, g := a[0].F, a[1], a[2].F
		n, d := x.Shape[0], x.Shape[1]
		eps := in.Attrs.Float("eps", 1e-5)
		for r := 0; r < n; r++ {
			xh, rstd := normRow(x.F[r*d:(r+1)*d], eps)
			var m1, m2 float64
			for c := range xh {
				dxh := dy[r*d+c] * g[c]
				m1 += dxh
				m2 += dxh * xh[c]
				o[1].F[c] += dy[r*d+c] * xh[c]
				o[2].F[c] += dy[r*d+c]
			}
			m1, m2 = m1/float64(d), m2/float64(d)
			for c := range xh {
				o[0].F[r*d+c] = rstd * (dy[r*d+c]*g[c] - m1 - xh[c]*m2)
			}
		}
	}
	ops["attention"] = func(in *ir.Instr, a, o []*Tensor) {
		attention64(in.Attrs, a[0], a[1], a[2], nil, o[0].F, nil, nil, nil)
	}
	ops["attention_grad"] = func(in *ir.Instr, a, o []*Tensor) {
		attention64(in.Attrs, a[1], a[2], a[3], a[0].F, nil, o[0].F, o[1].F, o[2].F)
	}
	ops["slice_cols"] = func(in *ir.Instr, a, o []*Tensor) {
		x, s := a[0], in.Attrs.Int("start", 0)
		w, c := x.Shape[1], o[0].Shape[1]
		for r := 0; r < x.Shape[0]; r++ {
			copy(o[0].F[r*c:(r+1)*c], x.F[r*w+s:r*w+s+c])
		}
	}
	ops["pad_cols"] = func(in *ir.Instr, a, o []*Tensor) {
		y, s := a[0], in.Attrs.Int("start", 0)
		c, w := y.Shape[1], o[0].Shape[1]
		for r := 0; r < y.Shape[0]; r++ {
			copy(o[0].F[r*w+s:r*w+s+c], y.F[r*c:(r+1)*c])
		}
	}
	ops["sum_all"] = func(_ *ir.Instr, a, o []*Tensor) {
		for _, v := range a[0].F {
			o[0].F[0] += v
		}
	}
	ops["broadcast_scalar"] = func(_ *ir.Instr, a, o []*Tensor) {
		for i := range o[0].F {
			o[0].F[i] = a[0].F[0]
		}
	}
	ops["mixture_nll"] = func(_ *ir.Instr, a, o []*Tensor) {
		o[0].F[0] = MixtureNLL(a[0], a[1], a[2].F, a[3].F, a[4].I, 0, nil, nil, nil)
	}
	ops["mixture_nll_grad"] = func(_ *ir.Instr, a, o []*Tensor) {
		MixtureNLL(a[1], a[2], a[3].F, a[4].F, a[5].I, a[0].F[0], o[0].F, o[1].F, o[2].F)
	}
}

// normRow returns (x − mean)/sqrt(var + eps) and 1/sqrt(var + eps).
func normRow(x []float64, eps float64) ([]float64, float64) {
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	var vr float64
	for _, v := range x {
		vr += (v - mean) * (v - mean)
	}
	rstd := 1 / math.Sqrt(vr/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = (v - mean) * rstd
	}
	return out, rstd
}

// attention64 computes the forward (out non-nil) or, given dO, the
// gradients of multi-head attention over sequences of attrs.seq rows.
func attention64(attrs ir.Attrs, q, k, v *Tensor, dO, out, dq, dk, dv []float64) {
	H, T, causal := attrs.Int("heads", 1), attrs.Int("seq", 1), attrs.Bool("causal", false)
	N, D := q.Shape[0], q.Shape[1]
	dh := D / H
	scale := 1 / math.Sqrt(float64(dh))
	at := func(m []float64, row, h, c int) float64 { return m[row*D+h*dh+c] }
	for b := 0; b < N/T; b++ {
		for h := 0; h < H; h++ {
			P := make([][]float64, T)
			for i := 0; i < T; i++ {
				s := make([]float64, T)
				last := T
				if causal {
					last = i + 1
				}
				mx := math.Inf(-1)
				for j := 0; j < last; j++ {
					for c := 0; c < dh; c++ {
						s[j] += at(q.F, b*T+i, h, c) * at(k.F, b*T+j, h, c)
					}
					s[j] *= scale
					mx = math.Max(mx, s[j])
				}
				var sum float64
				for j := 0; j < last; j++ {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for j := range s {
					if j < last {
						s[j] /= sum
					} else {
						s[j] = 0
					}
				}
				P[i] = s
			}
			for i := 0; i < T; i++ {
				if out != nil {
					for c := 0; c < dh; c++ {
						var o float64
						for j := 0; j < T; j++ {
							o += P[i][j] * at(v.F, b*T+j, h, c)
						}
						out[(b*T+i)*D+h*dh+c] = o
					}
					continue
				}
				dP := make([]float64, T)
				var dot float64
				for j := 0; j < T; j++ {
					for c := 0; c < dh; c++ {
						dP[j] += at(dO, b*T+i, h, c) * at(v.F, b*T+j, h, c)
					}
					dot += dP[j] * P[i][j]
				}
				for j := 0; j < T; j++ {
					dS := P[i][j] * (dP[j] - dot) * scale
					for c := 0; c < dh; c++ {
						dq[(b*T+i)*D+h*dh+c] += dS * at(k.F, b*T+j, h, c)
						dk[(b*T+j)*D+h*dh+c] += dS * at(q.F, b*T+i, h, c)
						dv[(b*T+j)*D+h*dh+c] += P[i][j] * at(dO, b*T+i, h, c)
					}
				}
			}
		}
	}
}

// MixtureNLL is the mean over rows with mask >= 0 of −log Σ_e G_e·N(y; μ_e,
// exp(lv_e)); with dg non-nil it also writes dloss times its gradients
// with respect to G, μ and lv.
func MixtureNLL(G, mu *Tensor, lv, y []float64, mask []int32, dloss float64, dg, dmu, dlv []float64) float64 {
	B, E := G.Shape[0], G.Shape[1]
	valid := 0
	for _, m := range mask {
		if m >= 0 {
			valid++
		}
	}
	if valid == 0 {
		return 0
	}
	var total float64
	logN := make([]float64, E)
	for r := 0; r < B; r++ {
		if mask[r] < 0 {
			continue
		}
		mx := math.Inf(-1)
		for e := 0; e < E; e++ {
			d := y[r] - mu.F[r*E+e]
			logN[e] = -0.5*math.Log(2*math.Pi) - 0.5*lv[e] - d*d/(2*math.Exp(lv[e]))
			if G.F[r*E+e] > 0 {
				mx = math.Max(mx, math.Log(G.F[r*E+e])+logN[e])
			}
		}
		var s float64
		for e := 0; e < E; e++ {
			if G.F[r*E+e] > 0 {
				s += math.Exp(math.Log(G.F[r*E+e]) + logN[e] - mx)
			}
		}
		logp := mx + math.Log(s)
		total -= logp
		if dg == nil {
			continue
		}
		c := dloss / float64(valid)
		for e := 0; e < E; e++ {
			n := math.Exp(logN[e] - logp) // N_e / p
			resp := G.F[r*E+e] * n
			d := y[r] - mu.F[r*E+e]
			v := math.Exp(lv[e])
			dg[r*E+e] = -c * n
			dmu[r*E+e] = -c * resp * d / v
			dlv[e] += c * resp * (0.5 - d*d/(2*v))
		}
	}
	return total / float64(valid)
}
