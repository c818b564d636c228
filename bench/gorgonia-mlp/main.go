// Command gorgonia-mlp is the gorgonia peer of bench/specs/mlp256.cue: the
// MLP 784-512-256-10 on Fashion-MNIST, batch 256, SGD momentum 0.9, lr 0.05,
// cross-entropy, He-normal weights and zero biases, the last partial batch
// dropped, data loaded and standardised by expc's own data package, so the
// only difference from expc is the engine (gorgonia v0.9.18, float32, its
// tape machine and gonum BLAS).
//
//	go run ./bench/gorgonia-mlp -threads 2 -rate-steps 300 -accuracy-epochs 3
//
// Rate: a fresh model, -warmup steps, then -rate-steps timed steps in chunks
// of -chunk; samples/s is the median chunk (training steps only, batch copy
// included). Bytes allocated per step come from runtime.MemStats over the
// timed steps. Accuracy (-accuracy-epochs > 0): a fresh model trained that
// many epochs, then test-set accuracy. Prints one JSON object.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/expc-dev/expc/data"
	"github.com/expc-dev/expc/schema"
)

var widths = []int{784, 512, 256, 10}

// net is one training graph: the batch inputs, the learnables and the
// machine that runs forward and backward.
type net struct {
	g      *G.ExprGraph
	x, y   *G.Node
	xT, yT *tensor.Dense // the batch, rewritten in place every step
	params G.Nodes
	loss   *G.Node
	vm     G.VM
	solver G.Solver
}

func newNet(batch int, seed uint64, lr, momentum float64) (*net, error) {
	r := rand.New(rand.NewPCG(seed, 1))
	n := &net{g: G.NewGraph()}
	n.xT = tensor.New(tensor.WithShape(batch, widths[0]), tensor.WithBacking(make([]float32, batch*widths[0])))
	n.yT = tensor.New(tensor.WithShape(batch, widths[len(widths)-1]), tensor.WithBacking(make([]float32, batch*widths[len(widths)-1])))
	n.x = G.NewMatrix(n.g, tensor.Float32, G.WithShape(batch, widths[0]), G.WithName("x"), G.WithValue(n.xT))
	n.y = G.NewMatrix(n.g, tensor.Float32, G.WithShape(batch, widths[len(widths)-1]), G.WithName("y"), G.WithValue(n.yT))
	h := n.x
	for i := 0; i+1 < len(widths); i++ {
		fanIn, fanOut := widths[i], widths[i+1]
		w := make([]float32, fanIn*fanOut)
		std := math.Sqrt(2 / float64(fanIn))
		for j := range w {
			w[j] = float32(r.NormFloat64() * std)
		}
		wn := G.NewMatrix(n.g, tensor.Float32, G.WithShape(fanIn, fanOut), G.WithName(fmt.Sprintf("w%d", i)),
			G.WithValue(tensor.New(tensor.WithShape(fanIn, fanOut), tensor.WithBacking(w))))
		bn := G.NewVector(n.g, tensor.Float32, G.WithShape(fanOut), G.WithName(fmt.Sprintf("b%d", i)),
			G.WithValue(tensor.New(tensor.WithShape(fanOut), tensor.WithBacking(make([]float32, fanOut)))))
		n.params = append(n.params, wn, bn)
		mm, err := G.Mul(h, wn)
		if err != nil {
			return nil, err
		}
		if h, err = G.BroadcastAdd(mm, bn, nil, []byte{0}); err != nil {
			return nil, err
		}
		if i+2 < len(widths) {
			if h, err = G.Rectify(h); err != nil {
				return nil, err
			}
		}
	}
	// loss = -sum(onehot * log_softmax(logits)) / batch
	logp, err := G.LogSoftMax(h)
	if err != nil {
		return nil, err
	}
	prod, err := G.HadamardProd(n.y, logp)
	if err != nil {
		return nil, err
	}
	total, err := G.Sum(prod)
	if err != nil {
		return nil, err
	}
	neg, err := G.Neg(total)
	if err != nil {
		return nil, err
	}
	if n.loss, err = G.Div(neg, G.NewConstant(float32(batch))); err != nil {
		return nil, err
	}
	if _, err := G.Grad(n.loss, n.params...); err != nil {
		return nil, err
	}
	n.vm = G.NewTapeMachine(n.g, G.BindDualValues(n.params...))
	n.solver = G.NewMomentum(G.WithLearnRate(lr), G.WithMomentum(momentum))
	return n, nil
}

// step trains on the examples idx of s.
func (n *net) step(s *data.Split, features int, idx []int) error {
	xs, ys := n.xT.Data().([]float32), n.yT.Data().([]float32)
	classes := widths[len(widths)-1]
	clear(ys)
	for r, i := range idx {
		copy(xs[r*features:(r+1)*features], s.X[i*features:(i+1)*features])
		ys[r*classes+int(s.Y[i])] = 1
	}
	if err := n.vm.RunAll(); err != nil {
		return err
	}
	if err := n.solver.Step(G.NodesToValueGrads(n.params)); err != nil {
		return err
	}
	n.vm.Reset()
	return nil
}

// accuracy runs the trained weights forward over the whole test split in a
// forward-only gorgonia graph.
func (n *net) accuracy(s *data.Split, features int) (float64, error) {
	g := G.NewGraph()
	h := G.NewMatrix(g, tensor.Float32, G.WithShape(s.N, features), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(s.N, features), tensor.WithBacking(s.X[:s.N*features]))))
	for i := 0; i < len(n.params); i += 2 {
		w, b := n.params[i].Value(), n.params[i+1].Value()
		wn := G.NewMatrix(g, tensor.Float32, G.WithShape(w.Shape()...), G.WithValue(w))
		bn := G.NewVector(g, tensor.Float32, G.WithShape(b.Shape()...), G.WithValue(b))
		mm, err := G.Mul(h, wn)
		if err != nil {
			return 0, err
		}
		if h, err = G.BroadcastAdd(mm, bn, nil, []byte{0}); err != nil {
			return 0, err
		}
		if i+2 < len(n.params) {
			if h, err = G.Rectify(h); err != nil {
				return 0, err
			}
		}
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		return 0, err
	}
	logits := h.Value().Data().([]float32)
	classes := widths[len(widths)-1]
	correct := 0
	for r := 0; r < s.N; r++ {
		row := logits[r*classes : (r+1)*classes]
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if best == int(s.Y[r]) {
			correct++
		}
	}
	return float64(correct) / float64(s.N), nil
}

// order yields the example indices of successive epochs, reshuffled each
// epoch, the last partial batch dropped.
type order struct {
	r    *rand.Rand
	perm []int
	pos  int
}

func (o *order) next(batch int) []int {
	if o.pos+batch > len(o.perm) {
		o.r.Shuffle(len(o.perm), func(i, j int) { o.perm[i], o.perm[j] = o.perm[j], o.perm[i] })
		o.pos = 0
	}
	o.pos += batch
	return o.perm[o.pos-batch : o.pos]
}

func newOrder(n int, seed uint64) *order {
	o := &order{r: rand.New(rand.NewPCG(seed, 2)), perm: make([]int, n)}
	for i := range o.perm {
		o.perm[i] = i
	}
	o.pos = n // shuffle before the first batch
	return o
}

type result struct {
	Gorgonia         string    `json:"gorgonia"`
	Threads          int       `json:"threads"`
	Batch            int       `json:"batch"`
	ChunkRates       []float64 `json:"chunk_rates,omitempty"`
	SamplesPerSecond float64   `json:"samples_per_second,omitempty"`
	BytesPerStep     float64   `json:"bytes_per_step,omitempty"`
	AllocsPerStep    float64   `json:"allocs_per_step,omitempty"`
	AccuracyEpochs   int       `json:"accuracy_epochs,omitempty"`
	TestAccuracy     float64   `json:"test_accuracy,omitempty"`
}

func main() {
	threads := flag.Int("threads", 2, "GOMAXPROCS")
	batch := flag.Int("batch", 256, "batch size")
	lr := flag.Float64("lr", 0.05, "learning rate")
	momentum := flag.Float64("momentum", 0.9, "momentum")
	warmup := flag.Int("warmup", 20, "untimed steps before the rate is measured")
	rateSteps := flag.Int("rate-steps", 300, "timed steps (0: skip the rate)")
	chunk := flag.Int("chunk", 50, "steps per timed chunk")
	accEpochs := flag.Int("accuracy-epochs", 3, "epochs of the accuracy run (0: skip it)")
	seed := flag.Uint64("seed", 1, "seed of the weights and the shuffle")
	dir := flag.String("data", "/usr/share/datasets/fashion-mnist", "Fashion-MNIST IDX directory")
	flag.Parse()
	runtime.GOMAXPROCS(*threads)
	if err := run(*threads, *batch, *lr, *momentum, *warmup, *rateSteps, *chunk, *accEpochs, *seed, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "gorgonia-mlp:", err)
		os.Exit(1)
	}
}

func run(threads, batch int, lr, momentum float64, warmup, rateSteps, chunk, accEpochs int, seed uint64, dir string) error {
	set, err := data.Load(schema.Dataset{Name: "fashion-mnist", Dir: dir, Batch: batch, Normalize: true, Shuffle: true}, "")
	if err != nil {
		return err
	}
	feat := set.Meta.Features
	if feat != widths[0] || set.Meta.Classes != widths[len(widths)-1] {
		return fmt.Errorf("dataset has %d features and %d classes, want %d and %d", feat, set.Meta.Classes, widths[0], widths[len(widths)-1])
	}
	res := result{Gorgonia: "v0.9.18", Threads: threads, Batch: batch}

	if rateSteps > 0 {
		n, err := newNet(batch, seed, lr, momentum)
		if err != nil {
			return err
		}
		o := newOrder(set.Train.N, seed)
		for range warmup {
			if err := n.step(&set.Train, feat, o.next(batch)); err != nil {
				return err
			}
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for done := 0; done < rateSteps; done += chunk {
			k := min(chunk, rateSteps-done)
			t := time.Now()
			for range k {
				if err := n.step(&set.Train, feat, o.next(batch)); err != nil {
					return err
				}
			}
			res.ChunkRates = append(res.ChunkRates, float64(k*batch)/time.Since(t).Seconds())
		}
		runtime.ReadMemStats(&m1)
		res.BytesPerStep = float64(m1.TotalAlloc-m0.TotalAlloc) / float64(rateSteps)
		res.AllocsPerStep = float64(m1.Mallocs-m0.Mallocs) / float64(rateSteps)
		rates := slices.Clone(res.ChunkRates)
		slices.Sort(rates)
		res.SamplesPerSecond = rates[len(rates)/2]
		n.vm.Close()
	}

	if accEpochs > 0 {
		n, err := newNet(batch, seed, lr, momentum)
		if err != nil {
			return err
		}
		o := newOrder(set.Train.N, seed)
		for range accEpochs * (set.Train.N / batch) {
			if err := n.step(&set.Train, feat, o.next(batch)); err != nil {
				return err
			}
		}
		if res.TestAccuracy, err = n.accuracy(&set.Eval, feat); err != nil {
			return err
		}
		res.AccuracyEpochs = accEpochs
		n.vm.Close()
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
