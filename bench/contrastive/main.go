// Command contrastive times a contrastive loss's forward + backward as expc
// plans (the fused kernel, and the unfused graph where it fits) and reports
// memory, one JSON line per measurement. bench/contrastive.sh runs it next
// to PyTorch:
//
//	go run ./bench/contrastive -objective nt_xent -n 1024,4096,8192 -d 128
//
// Memory: peak RSS (VmHWM, reset through /proc/self/clear_refs) over the
// RSS after the inputs exist and before the plan is prepared, so it counts
// the arena (which holds a copy of the inputs and the gradients) and the
// fused kernel's workspace; plus the plans' arena bytes.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/compiler"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/lowering"
)

type result struct {
	System            string  `json:"system"`
	Tile              int     `json:"tile,omitempty"`
	Objective         string  `json:"objective"`
	N                 int     `json:"n"`
	D                 int     `json:"d"`
	Threads           int     `json:"threads"`
	MedianMS          float64 `json:"median_ms"`
	MinMS             float64 `json:"min_ms"`
	ExtraPeakMiB      float64 `json:"extra_peak_mib"`
	ArenaBytes        int64   `json:"arena_bytes"`
	UnfusedArenaBytes int64   `json:"unfused_arena_bytes"`
	Loss              float32 `json:"loss"`
}

func main() {
	obj := flag.String("objective", "nt_xent", "nt_xent (N rows = 2·N/2 views, one tower) or dual (N×N, two towers)")
	ns := flag.String("n", "1024,4096,8192", "rows: the similarity matrix is n×n")
	d := flag.Int("d", 128, "embedding width")
	reps := flag.Int("reps", 10, "timed repetitions (after one warm-up)")
	threads := flag.Int("threads", 2, "worker threads (also GOMAXPROCS)")
	unfusedMax := flag.Int("unfused-max", 4096, "also time the unfused plan up to this n")
	tau := flag.Float64("tau", 0.1, "temperature")
	tile := flag.Int("tile", 0, "override the fused kernel's tile (0: the pass's choice)")
	flag.Parse()
	runtime.GOMAXPROCS(*threads)
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fail(err)
		}
		spec := compiler.LossModuleSpec{LossOptions: compiler.LossOptions{Objective: *obj, InvTemperature: 1 / *tau}, Rows: n, Dim: *d}
		fused, unfused := plan(spec, true), plan(spec, false)
		if *tile > 0 {
			for i := range fused.Programs[0].Kernels {
				if k := &fused.Programs[0].Kernels[i]; k.Op == "contrastive_xent_fused" {
					k.Attrs["tile"] = *tile
				}
			}
		}
		runs := []*ir.Plan{fused}
		if n <= *unfusedMax {
			runs = append(runs, unfused)
		}
		for i, p := range runs {
			r := measure(p, *reps, *threads)
			r.System, r.Objective, r.N, r.D, r.Threads = "expc-fused", *obj, n, *d, *threads
			if i == 1 {
				r.System = "expc-unfused"
			} else {
				r.Tile = fused.Programs[0].Kernels[len(fused.Programs[0].Kernels)-1].Attrs.Int("tile", 0)
			}
			r.ArenaBytes, r.UnfusedArenaBytes = fused.Memory.ArenaBytes, unfused.Memory.ArenaBytes
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		}
	}
}

func plan(spec compiler.LossModuleSpec, fuse bool) *ir.Plan {
	mod, err := compiler.LossModule(spec)
	if err != nil {
		fail(err)
	}
	cfg := lowering.Config{OptLevel: 1}
	if !fuse {
		cfg.Disabled = []string{"fuse-contrastive"}
	}
	p, err := lowering.PlanModule(mod, "cpu", cfg)
	if err != nil {
		fail(err)
	}
	return p
}

func measure(p *ir.Plan, reps, threads int) result {
	pr := p.Program("train")
	r := rand.New(rand.NewPCG(1, 2))
	inputs := map[string][]float32{}
	for _, in := range pr.Inputs {
		x := make([]float32, p.Buffers[in.Buffer].Type.Shape.Elems())
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		inputs[in.Name] = x
	}
	runtime.GC()
	debug.FreeOSMemory()
	resetPeak()
	base := rssKiB("VmRSS")
	be := cpu.New(threads)
	defer be.Close()
	exe, err := be.Prepare(p)
	if err != nil {
		fail(err)
	}
	defer exe.Close()
	for _, in := range pr.Inputs {
		copy(exe.F32(in.Buffer), inputs[in.Name])
	}
	step := func() time.Duration {
		t := time.Now()
		if err := exe.Run("train"); err != nil {
			fail(err)
		}
		return time.Since(t)
	}
	step()
	ts := make([]time.Duration, reps)
	for i := range ts {
		ts[i] = step()
	}
	peak := rssKiB("VmHWM")
	slices.Sort(ts)
	return result{MedianMS: ms(ts[len(ts)/2]), MinMS: ms(ts[0]), ExtraPeakMiB: float64(peak-base) / 1024,
		Loss: exe.F32(pr.Binding("loss"))[0]}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// resetPeak resets VmHWM to the current RSS (Linux: clear_refs 5).
func resetPeak() {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "cannot reset the peak RSS:", err)
	}
}

func rssKiB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return v
		}
	}
	return 0
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "contrastive:", err)
	os.Exit(1)
}
