package compiler

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/ir/interp"
	"github.com/expc-dev/expc/schema"
)

// TestMLPGradientMatchesGorgonia compiles an MLP training step, runs its
// forward and backward graph in float64, and compares the loss and every
// parameter gradient with gorgonia's symbolic differentiation of the same
// network on the same weights and batch: an independent oracle for the
// whole autodiff, not just op by op. Tolerance: relative 1e-9 per tensor.
func TestMLPGradientMatchesGorgonia(t *testing.T) {
	const batch, feat, classes = 8, 12, 5
	hidden := []int{10, 7}
	exp := &schema.Experiment{
		Name:      "oracle",
		Dataset:   schema.Dataset{Name: "blobs", Batch: batch},
		Model:     schema.Model{Kind: "mlp", Hidden: hidden, Activation: "relu"},
		Loss:      schema.Loss{Kind: "cross_entropy", LabelSmoothing: 0.1},
		Optimizer: schema.Optimizer{Kind: "sgd", LR: 0.1, Momentum: 0.9},
		Train:     schema.Train{Steps: 1},
	}
	mod, _, diags := Compile(Input{Exp: exp, Target: "cpu",
		Data: DataShape{Features: feat, Classes: classes, TrainN: 100, EvalN: 10}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	train := mod.Func("train")

	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	args := map[string]*interp.Tensor{}
	for _, p := range train.Params {
		tt := &interp.Tensor{Shape: p.Type.Shape}
		if p.Type.DType == ir.I32 {
			tt.I = make([]int32, p.Type.Shape.Elems())
			for i := range tt.I {
				tt.I[i] = int32(r.IntN(classes))
			}
		} else {
			tt.F = make([]float64, p.Type.Shape.Elems())
			for i := range tt.F {
				tt.F[i] = r.NormFloat64() * 0.5
			}
		}
		args[p.Name] = tt
	}
	args["step"].I[0] = 0
	env, err := interp.Run(train, args)
	if err != nil {
		t.Fatal(err)
	}
	// The gradient of each parameter is what its sgd update consumed.
	ours := map[string][]float64{}
	var loss float64
	for _, in := range train.Body {
		if in.Op == "sgd" {
			ours[in.Args[0].Name] = env[in.Args[1]].F
		}
	}
	for _, o := range train.Outputs {
		if o.Name == "loss" {
			loss = env[o.Value].F[0]
		}
	}

	// The same network in gorgonia.
	g := G.NewGraph()
	mat := func(name string, rows, cols int) *G.Node {
		return G.NewMatrix(g, tensor.Float64, G.WithShape(rows, cols), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(append([]float64(nil), args[name].F...)))))
	}
	vec := func(name string, n int) *G.Node {
		return G.NewVector(g, tensor.Float64, G.WithShape(n), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(append([]float64(nil), args[name].F...)))))
	}
	widths := append(append([]int{feat}, hidden...), classes)
	h := mat("x", batch, feat)
	var params []*G.Node
	var names []string
	for i := 0; i+1 < len(widths); i++ {
		wn, bn := "fc"+string(rune('1'+i))+".w", "fc"+string(rune('1'+i))+".b"
		w, b := mat(wn, widths[i], widths[i+1]), vec(bn, widths[i+1])
		params = append(params, w, b)
		names = append(names, wn, bn)
		h = G.Must(G.BroadcastAdd(G.Must(G.Mul(h, w)), b, nil, []byte{0}))
		if i+2 < len(widths) {
			h = G.Must(G.Rectify(h))
		}
	}
	// Smoothed one-hot targets; loss = -mean_rows sum_j t_j log softmax_j.
	const s = 0.1
	target := make([]float64, batch*classes)
	for r, y := range args["y"].I {
		for j := 0; j < classes; j++ {
			target[r*classes+j] = s / classes
		}
		target[r*classes+int(y)] += 1 - s
	}
	tn := G.NewMatrix(g, tensor.Float64, G.WithShape(batch, classes), G.WithName("t"),
		G.WithValue(tensor.New(tensor.WithShape(batch, classes), tensor.WithBacking(target))))
	logp := G.Must(G.Log(G.Must(G.SoftMax(h))))
	total := G.Must(G.Sum(G.Must(G.HadamardProd(tn, logp))))
	gl := G.Must(G.Div(G.Must(G.Neg(total)), G.NewConstant(float64(batch))))
	if _, err := G.Grad(gl, params...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(params...))
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(gl.Value().Data().(float64) - loss); d > 1e-9*math.Abs(loss) {
		t.Fatalf("loss: expc %.12g, gorgonia %.12g", loss, gl.Value().Data().(float64))
	}
	for i, p := range params {
		gv, err := p.Grad()
		if err != nil {
			t.Fatal(err)
		}
		want := gv.Data().([]float64)
		got := ours[names[i]]
		if len(got) != len(want) {
			t.Fatalf("%s: %d gradient values, gorgonia has %d", names[i], len(got), len(want))
		}
		var num, den float64
		for j := range want {
			num += (got[j] - want[j]) * (got[j] - want[j])
			den += want[j] * want[j]
		}
		if math.Sqrt(num) > 1e-9*math.Sqrt(den)+1e-15 {
			t.Errorf("%s: relative gradient error %.3g vs gorgonia", names[i], math.Sqrt(num/den))
		}
	}
}
