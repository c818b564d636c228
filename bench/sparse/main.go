// Command sparse times a masked linear layer, forward + backward, on the CPU
// backend: y = x·(W⊙M), dX = dY·(W⊙M)ᵀ, dW = (xᵀ·dY)⊙M for x of batch x in
// and W of in x out (1024 x 1024 by default). Each variant is a small plan of
// real kernels run through the backend:
//
//	dense              three dense GEMMs (matmul kernels), no mask
//	dense-mask/<pat>   the unfused plan: W ⊙ M, three GEMMs, dW ⊙ M
//	fused/<pat>/<k>    the three masked_matmul kernels of fuse-sparse-masks
//
// for the masks 2:4 (magnitude), block (32x32 blocks, 10% kept) and
// unstructured (10% kept, random). It prints one JSON line per variant and
// product ({"system":"expc","variant":"fused/2:4/nm","median_ms":...}; the
// whole forward + backward, then /fwd, /dx, /dw alone); the variants take
// turns rep by rep. bench/sparse.sh runs it next to PyTorch.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/ir"
)

func main() {
	threads := flag.Int("threads", 2, "worker threads (also sets GOMAXPROCS)")
	reps := flag.Int("reps", 20, "timed runs per variant (after two warm-up runs)")
	batch := flag.Int("batch", 1024, "rows of x")
	in := flag.Int("in", 1024, "input features (rows of W)")
	out := flag.Int("out", 1024, "output features (columns of W)")
	only := flag.String("only", "", "run only variants whose name starts with this")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the timed runs to this file")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	runtime.GOMAXPROCS(*threads)

	b := &builder{B: *batch, K: *in, N: *out}
	plan := b.plan()
	be := cpu.New(*threads)
	defer be.Close()
	exe, err := be.Prepare(plan)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	x := exe.(*cpu.Executable)
	r := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"x", "w", "dy"} {
		for i := range x.F32(b.ids[name]) {
			x.F32(b.ids[name])[i] = float32(r.NormFloat64())
		}
	}
	for _, pat := range patterns {
		fill(x.F32(b.ids["m/"+pat]), x.F32(b.ids["w"]), pat, b.K, b.N, r)
		x.I32(b.ids["gen/"+pat])[0] = int32(len(pat)) // any non-zero generation
	}
	// Variants alternate rep by rep (after two warm-up rounds), so that load
	// from other users of this shared machine lands on all of them alike
	// and the ratios between them hold within a run.
	var names []string
	for _, pr := range plan.Programs {
		if *only == "" || startsWith(pr.Name, *only) {
			names = append(names, pr.Name)
		}
	}
	ts := make([][]time.Duration, len(names))
	for rep := -2; rep < *reps; rep++ {
		for i, name := range names {
			t0 := time.Now()
			if err := x.Run(name); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if rep >= 0 {
				ts[i] = append(ts[i], time.Since(t0))
			}
		}
	}
	for i, name := range names {
		slices.Sort(ts[i])
		fmt.Printf(`{"system":"expc","variant":%q,"batch":%d,"in":%d,"out":%d,"threads":%d,"reps":%d,"median_ms":%.3f,"best_ms":%.3f}`+"\n",
			name, b.B, b.K, b.N, *threads, *reps, ts[i][len(ts[i])/2].Seconds()*1e3, ts[i][0].Seconds()*1e3)
	}
}

func startsWith(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

var patterns = []string{"2:4", "block", "unstructured"}

// kernels the fused variants use per pattern (what the cost model picks).
var kernels = map[string][]string{"2:4": {"nm"}, "block": {"block"}, "unstructured": {"csr"}}

// fill writes a mask: 2:4 keeps the two largest |w| of each group of four
// rows of a column, block keeps 10% of the 32x32 blocks, unstructured 10% of
// the weights (both at random).
func fill(m, w []float32, pat string, rows, cols int, r *rand.Rand) {
	clear(m)
	switch pat {
	case "2:4":
		for j := range cols {
			for g := 0; g < rows; g += 4 {
				idx := []int{0, 1, 2, 3}
				slices.SortFunc(idx, func(a, b int) int {
					wa, wb := abs(w[(g+a)*cols+j]), abs(w[(g+b)*cols+j])
					switch {
					case wa > wb:
						return -1
					case wa < wb:
						return 1
					}
					return a - b
				})
				m[(g+idx[0])*cols+j], m[(g+idx[1])*cols+j] = 1, 1
			}
		}
	case "block":
		for bi := 0; bi < rows; bi += 32 {
			for bj := 0; bj < cols; bj += 32 {
				if r.Float64() < 0.1 {
					for i := bi; i < min(bi+32, rows); i++ {
						for j := bj; j < min(bj+32, cols); j++ {
							m[i*cols+j] = 1
						}
					}
				}
			}
		}
	default:
		for i := range m {
			if r.Float64() < 0.1 {
				m[i] = 1
			}
		}
	}
}

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// builder lays out the buffers and programs of the benchmark plan.
type builder struct {
	B, K, N int
	p       ir.Plan
	ids     map[string]int
	off     int64
}

func (b *builder) buf(name string, t ir.Type, kind ir.BufferKind) int {
	id := len(b.p.Buffers)
	n := t.Bytes()
	b.p.Buffers = append(b.p.Buffers, ir.Buffer{ID: id, Name: name, Type: t, Kind: kind, Offset: b.off, Bytes: n})
	b.off += (n + 63) &^ 63
	b.ids[name] = id
	return id
}

func (b *builder) plan() *ir.Plan {
	b.ids = map[string]int{}
	f32 := func(r, c int) ir.Type { return ir.Tensor(ir.F32, r, c) }
	x := b.buf("x", f32(b.B, b.K), ir.BufInput)
	w := b.buf("w", f32(b.K, b.N), ir.BufParam)
	dy := b.buf("dy", f32(b.B, b.N), ir.BufInput)
	y := b.buf("y", f32(b.B, b.N), ir.BufTemp)
	dx := b.buf("dx", f32(b.B, b.K), ir.BufTemp)
	dw := b.buf("dw", f32(b.K, b.N), ir.BufTemp)
	wm := b.buf("wm", f32(b.K, b.N), ir.BufTemp)
	g := b.buf("g", f32(b.K, b.N), ir.BufTemp)
	for _, pat := range patterns {
		b.buf("m/"+pat, f32(b.K, b.N), ir.BufState)
		b.buf("gen/"+pat, ir.Scalar(ir.I32), ir.BufState)
	}
	k := func(op string, ins []int, outs []int, attrs ir.Attrs) ir.Kernel {
		return ir.Kernel{Op: op, Ins: ins, Outs: outs, Attrs: attrs}
	}
	prog := func(name string, ks ...ir.Kernel) {
		for i := range ks {
			ks[i].Name = fmt.Sprintf("k%d", i)
		}
		b.p.Programs = append(b.p.Programs, ir.Program{Name: name, Kernels: ks})
	}
	fwd := k("matmul", []int{x, w}, []int{y}, nil)
	dX := k("matmul", []int{dy, w}, []int{dx}, ir.Attrs{"transpose_b": true})
	dW := k("matmul", []int{x, dy}, []int{dw}, ir.Attrs{"transpose_a": true})
	prog("dense", fwd, dX, dW)
	prog("dense/fwd", fwd)
	prog("dense/dx", dX)
	prog("dense/dw", dW)
	for _, pat := range patterns {
		m, gen := b.ids["m/"+pat], b.ids["gen/"+pat]
		prog("dense-mask/"+pat,
			k("mul", []int{w, m}, []int{wm}, nil),
			k("matmul", []int{x, wm}, []int{y}, nil),
			k("matmul", []int{dy, wm}, []int{dx}, ir.Attrs{"transpose_b": true}),
			k("matmul", []int{x, dy}, []int{g}, ir.Attrs{"transpose_a": true}),
			k("mul", []int{g, m}, []int{dw}, nil))
		for _, kern := range kernels[pat] {
			a := func(extra ir.Attrs) ir.Attrs {
				out := ir.Attrs{"kernel": kern}
				switch pat {
				case "2:4":
					out["pattern"], out["n"], out["m"], out["density"] = "nm", 2, 4, 0.5
				case "block":
					out["pattern"], out["block"], out["density"] = "block", []int{32, 32}, 0.1
				default:
					out["pattern"], out["density"] = "unstructured", 0.1
				}
				for k, v := range extra {
					out[k] = v
				}
				return out
			}
			f := k("masked_matmul", []int{x, w, m, gen}, []int{y}, a(nil))
			i := k("masked_matmul", []int{dy, w, m, gen}, []int{dx}, a(ir.Attrs{"transpose_b": true}))
			d := k("masked_matmul_dw", []int{x, dy, m, gen}, []int{dw}, a(nil))
			name := "fused/" + pat + "/" + kern
			prog(name, f, i, d)
			prog(name+"/fwd", f)
			prog(name+"/dx", i)
			prog(name+"/dw", d)
		}
	}
	b.p.Memory.ArenaBytes = b.off
	b.p.Format, b.p.Name, b.p.Target = ir.PlanFormat, "sparse-bench", "cpu"
	return &b.p
}
