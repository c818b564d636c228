// Command moe times one mixture-of-experts layer's forward + backward
// (router, gate, top-k, experts, combine, auxiliary losses, the loss
// Σ y⊙r for a fixed random r, every gradient including the input's)
// as expc plans: fused (fuse-moe-gating) and unfused (-O0). bench/moe.sh
// runs it next to PyTorch; one JSON line per measurement:
//
//	go run ./bench/moe -tokens 4096 -d 256 -experts 8 -hidden 1024 -k 2
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/compiler"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/lowering"
	"github.com/expc-dev/expc/schema"
)

type result struct {
	System     string  `json:"system"`
	Tokens     int     `json:"tokens"`
	D          int     `json:"d"`
	Experts    int     `json:"experts"`
	Hidden     int     `json:"hidden"`
	K          int     `json:"k"`
	Capacity   float64 `json:"capacity_factor"`
	Threads    int     `json:"threads"`
	Reps       int     `json:"reps"`
	MedianMS   float64 `json:"median_ms"`
	MinMS      float64 `json:"min_ms"`
	GFLOPS     float64 `json:"expert_gflops"` // expert FFN work (6 GEMMs per routed token) per second
	Kernels    int     `json:"kernels"`
	ArenaBytes int64   `json:"arena_bytes"`
	Loss       float32 `json:"loss"`
}

func main() {
	tokens := flag.Int("tokens", 4096, "tokens T")
	d := flag.Int("d", 256, "model width")
	experts := flag.Int("experts", 8, "experts E")
	hidden := flag.Int("hidden", 1024, "expert FFN hidden width")
	k := flag.Int("k", 2, "top-k")
	capacity := flag.Float64("capacity", 0, "capacity factor (0: dropless)")
	reps := flag.Int("reps", 10, "timed repetitions (after two warm-ups)")
	threads := flag.Int("threads", 2, "worker threads (also GOMAXPROCS)")
	variants := flag.String("variants", "fused,unfused", "plans to time")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the timed steps to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "moe:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "moe:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	runtime.GOMAXPROCS(*threads)
	spec := schema.MoE{Experts: *experts, TopK: *k, Gate: "topk_softmax", Temperature: 1, RouterActivation: "none",
		CapacityFactor: *capacity, LoadBalance: 0.01, ZLoss: 0.001, Hidden: *hidden, Activation: "relu"}
	cfg := compiler.MoEConfig{Name: "moe", Width: *d, Tokens: *tokens, Spec: spec,
		Capacity: compiler.MoECapacity(*tokens, *experts, *k, *capacity)}
	be := cpu.New(*threads)
	for _, v := range strings.Split(*variants, ",") {
		opt := 1
		if v == "unfused" {
			opt = 0
		}
		r, err := run(be, cfg, opt, *reps)
		if err != nil {
			fmt.Fprintln(os.Stderr, "moe:", err)
			os.Exit(1)
		}
		r.System, r.Threads = "expc-"+v, *threads
		r.Tokens, r.D, r.Experts, r.Hidden, r.K, r.Capacity = *tokens, *d, *experts, *hidden, *k, *capacity
		routed := float64(min(*tokens**k, *experts*cfg.Capacity))
		r.GFLOPS = 6 * 2 * routed * float64(*d) * float64(*hidden) / (r.MedianMS * 1e-3) / 1e9
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
	}
}

func run(be *cpu.Backend, cfg compiler.MoEConfig, opt, reps int) (result, error) {
	m, err := compiler.MoELayerModule(cfg, true)
	if err != nil {
		return result{}, err
	}
	u := &lowering.Unit{Module: m, Plan: &ir.Plan{Format: ir.PlanFormat, Name: m.Name, Target: "cpu"}}
	if _, err := lowering.Run(u, lowering.Config{OptLevel: opt, Seed: 1}); err != nil {
		return result{}, err
	}
	p := u.Plan
	x, err := be.Prepare(p)
	if err != nil {
		return result{}, err
	}
	defer x.Close()
	pr := p.Program("train")
	rng := rand.New(rand.NewPCG(1, 2))
	xs := x.F32(pr.Binding("x"))
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	rs := x.F32(pr.Binding("r"))
	for i := range rs {
		rs[i] = float32(rng.NormFloat64()) / float32(cfg.Tokens)
	}
	step := func() (time.Duration, error) {
		t := time.Now()
		err := x.Run("train")
		return time.Since(t), err
	}
	for range 2 {
		if _, err := step(); err != nil {
			return result{}, err
		}
	}
	ts := make([]time.Duration, reps)
	for i := range ts {
		if ts[i], err = step(); err != nil {
			return result{}, err
		}
	}
	slices.Sort(ts)
	return result{Reps: reps, MedianMS: ms(ts[len(ts)/2]), MinMS: ms(ts[0]), Kernels: len(pr.Kernels),
		ArenaBytes: p.Memory.ArenaBytes, Loss: x.F32(pr.Binding("loss"))[0]}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
