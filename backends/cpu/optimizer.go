package cpu

import (
	"fmt"
	"math"

	"github.com/expc-dev/expc/backends/cpu/pool"
)

// Optimizer updates. They usually run in place (w' is w, v' is v): each
// element's inputs are read into registers before its outputs are written,
// which makes exact aliasing safe. Per-element arithmetic is float32, as a
// GPU kernel would do it; per-launch scalars (bias corrections) are float64.

func init() {
	register("sgd", true, newSGD)
	register("adamw", true, newAdamW)
	register("lr_schedule", false, newLRSchedule)
}

type sgd struct {
	pool            *pool.Pool
	w, g, v, lr     []float32
	wOut, vOut      []float32
	momentum, decay float32
	nesterov        bool
	c               chunks
	rate            float32 // lr[0], read once per launch
}

func newSGD(b *binder) (kernel, error) {
	a := b.attrs()
	k := &sgd{pool: b.pool, w: b.in(0), g: b.in(1), v: b.in(2), lr: b.in(3), wOut: b.out(0), vOut: b.out(1),
		momentum: b.f32Attr("momentum", 0), decay: b.f32Attr("weight_decay", 0), nesterov: a.Bool("nesterov", false)}
	k.c = split(len(k.w), grainOptimizer, b.workers(), lineFloats)
	return k, nil
}

func (k *sgd) run() error {
	k.rate = k.lr[0]
	k.pool.RunTask(k.c.tasks, k)
	return nil
}

// Run: g' = g + wd·w; v' = m·v + g'; u = nesterov ? g' + m·v' : v'; w' = w − lr·u.
func (k *sgd) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	w, g, v := k.w[lo:hi], k.g[lo:hi], k.v[lo:hi]
	wo, vo := k.wOut[lo:hi], k.vOut[lo:hi]
	g, v, wo, vo = g[:len(w)], v[:len(w)], wo[:len(w)], vo[:len(w)]
	m, wd, lr := k.momentum, k.decay, k.rate
	// The update is memory-bound and the Go compiler does not vectorise:
	// the AVX-512 loop does the bulk (it is a fifth of a training step in
	// scalar Go), this loop the tail, with the same operation order.
	done := sgdSIMD(w, g, v, wo, vo, m, wd, lr, k.nesterov)
	w, g, v, wo, vo = w[done:], g[done:], v[done:], wo[done:], vo[done:]
	for i, wi := range w {
		gi := g[i] + wd*wi
		vi := m*v[i] + gi
		u := vi
		if k.nesterov {
			u = gi + m*vi
		}
		wo[i] = wi - lr*u
		vo[i] = vi
	}
}

type adamw struct {
	pool             *pool.Pool
	w, g, m, v, lr   []float32
	step             []int32
	wOut, mOut, vOut []float32
	beta1, beta2     float64
	eps, decay       float32
	c                chunks
	rate, ibc1, ibc2 float32 // per launch: lr and 1/(1−β^t)
}

func newAdamW(b *binder) (kernel, error) {
	k := &adamw{pool: b.pool, w: b.in(0), g: b.in(1), m: b.in(2), v: b.in(3), lr: b.in(4), step: b.inI32(5),
		wOut: b.out(0), mOut: b.out(1), vOut: b.out(2),
		beta1: b.attrs().Float("beta1", 0.9), beta2: b.attrs().Float("beta2", 0.999),
		eps: b.f32Attr("eps", 1e-8), decay: b.f32Attr("weight_decay", 0)}
	k.c = split(len(k.w), grainOptimizer, b.workers(), lineFloats)
	return k, nil
}

func (k *adamw) run() error {
	step := k.step[0]
	if step < 0 {
		return fmt.Errorf("step %d is negative", step)
	}
	t := float64(step) + 1
	k.rate = k.lr[0]
	k.ibc1 = float32(1 / (1 - math.Pow(k.beta1, t)))
	k.ibc2 = float32(1 / (1 - math.Pow(k.beta2, t)))
	k.pool.RunTask(k.c.tasks, k)
	return nil
}

// Run: m' = β1·m + (1−β1)·g; v' = β2·v + (1−β2)·g²;
// w' = w − lr·((m'/(1−β1^t)) / (sqrt(v'/(1−β2^t)) + eps) + wd·w).
func (k *adamw) Run(_, t int) {
	lo, hi := k.c.bounds(t)
	w := k.w[lo:hi]
	n := len(w)
	g, m, v := k.g[lo:hi][:n], k.m[lo:hi][:n], k.v[lo:hi][:n]
	wo, mo, vo := k.wOut[lo:hi][:n], k.mOut[lo:hi][:n], k.vOut[lo:hi][:n]
	b1, b2 := float32(k.beta1), float32(k.beta2)
	c1, c2 := float32(1-k.beta1), float32(1-k.beta2)
	lr, eps, wd, ibc1, ibc2 := k.rate, k.eps, k.decay, k.ibc1, k.ibc2
	for i, wi := range w {
		gi := g[i]
		mi := b1*m[i] + c1*gi
		vi := b2*v[i] + c2*gi*gi
		den := float32(math.Sqrt(float64(vi*ibc2))) + eps
		wo[i] = wi - lr*((mi*ibc1)/den+wd*wi)
		mo[i] = mi
		vo[i] = vi
	}
}

// lrSchedule: linear warmup over the first warmup steps (lr·(step+1)/warmup),
// then constant lr or a cosine decay from lr to min_lr over total−warmup steps.
type lrSchedule struct {
	step          []int32
	out           []float32
	cosine        bool
	lr, minLR     float64
	warmup, total int
}

func newLRSchedule(b *binder) (kernel, error) {
	a := b.attrs()
	return &lrSchedule{step: b.inI32(0), out: b.out(0), cosine: a.Str("kind", "constant") == "cosine",
		lr: a.Float("lr", 0), minLR: a.Float("min_lr", 0), warmup: a.Int("warmup", 0), total: a.Int("total", 0)}, nil
}

func (k *lrSchedule) run() error {
	k.out[0] = float32(lrAt(float64(k.step[0]), k.cosine, k.lr, k.minLR, k.warmup, k.total))
	return nil
}

func lrAt(step float64, cosine bool, lr, minLR float64, warmup, total int) float64 {
	if warmup > 0 && step < float64(warmup) {
		return lr * (step + 1) / float64(warmup)
	}
	if !cosine {
		return lr
	}
	p := (step - float64(warmup)) / float64(max(1, total-warmup))
	p = min(max(p, 0), 1)
	return minLR + (lr-minLR)*0.5*(1+math.Cos(math.Pi*p))
}
