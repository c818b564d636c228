package sparse

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/expc-dev/expc/backends/cpu/gemm"
	"github.com/expc-dev/expc/backends/cpu/pool"
)

// randomMask draws a mask of the given kind: unstructured at density d,
// 2:4 or 1:4 along the rows, 32x32 blocks at density d, or all ones.
func randomMask(r *rand.Rand, kind string, rows, cols int, d float64) []float32 {
	m := make([]float32, rows*cols)
	switch kind {
	case "nm", "nm1", "nm3":
		keep := map[string]int{"nm": 2, "nm1": 1, "nm3": 3}[kind]
		for j := range cols {
			for g := 0; g+4 <= rows; g += 4 {
				for _, i := range r.Perm(4)[:keep] {
					m[(g+i)*cols+j] = 1
				}
			}
		}
	case "block":
		for bi := 0; bi < rows; bi += 32 {
			for bj := 0; bj < cols; bj += 32 {
				if r.Float64() < d {
					for i := bi; i < min(bi+32, rows); i++ {
						for j := bj; j < min(bj+32, cols); j++ {
							m[i*cols+j] = 1
						}
					}
				}
			}
		}
	case "ones":
		for i := range m {
			m[i] = 1
		}
	default:
		for i := range m {
			if r.Float64() < d {
				m[i] = 1
			}
		}
	}
	return m
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// reference computes a product in float64, and for each output the sum
// of the magnitudes of its terms (the scale of its rounding error).
func reference(dir Dir, s Shape, a, w, m, dy []float32, ep *Epilogue) ([]float64, []float64) {
	B, R, C := s.Batch, s.Rows, s.Cols
	switch dir {
	case Forward:
		out, mag := make([]float64, B*C), make([]float64, B*C)
		for b := range B {
			for j := range C {
				var t, u float64
				for k := range R {
					x := float64(a[b*R+k]) * float64(w[k*C+j]*m[k*C+j])
					t, u = t+x, u+math.Abs(x)
				}
				out[b*C+j], mag[b*C+j] = t, u
			}
		}
		return epilogue64(out, C, ep), mag
	case Input:
		out, mag := make([]float64, B*R), make([]float64, B*R)
		for b := range B {
			for k := range R {
				var t, u float64
				for j := range C {
					x := float64(a[b*C+j]) * float64(w[k*C+j]*m[k*C+j])
					t, u = t+x, u+math.Abs(x)
				}
				out[b*R+k], mag[b*R+k] = t, u
			}
		}
		return epilogue64(out, R, ep), mag
	}
	out, mag := make([]float64, R*C), make([]float64, R*C)
	for k := range R {
		for j := range C {
			if m[k*C+j] == 0 {
				continue
			}
			var t, u float64
			for b := range B {
				x := float64(a[b*R+k]) * float64(dy[b*C+j])
				t, u = t+x, u+math.Abs(x)
			}
			out[k*C+j], mag[k*C+j] = t, u
		}
	}
	return out, mag
}

func epilogue64(out []float64, cols int, ep *Epilogue) []float64 {
	if ep == nil {
		return out
	}
	for i := range out {
		v := out[i]
		if ep.Bias != nil {
			v += float64(ep.Bias[i%cols])
		}
		if ep.Pre != nil {
			v *= float64(gemm.ActGrad(ep.Act, ep.Pre[i]))
		} else {
			v = float64(gemm.ActForward(ep.Act, float32(v)))
		}
		out[i] = v
	}
	return out
}

// TestKernelsMatchReference runs every kernel on every product for random
// masks and shapes with ragged edges, on one worker, two and three, against a
// float64 reference. Tolerance: |got - want| <= 1e-5·Σ|terms| + 1e-6 (the
// epilogue's activations are Lipschitz-1 here: relu, tanh').
func TestKernelsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	p2, p3 := pool.New(2), pool.New(3)
	defer p2.Close()
	defer p3.Close()
	// Rows 1100: the N:4 forward runs two k blocks (nmKBlock groups each),
	// the second of 19 groups. Cols 420: it packs three column blocks, the
	// third into the first's buffer.
	shapes := []Shape{{Batch: 37, Rows: 52, Cols: 45}, {Batch: 64, Rows: 96, Cols: 64}, {Batch: 130, Rows: 68, Cols: 100}, {Batch: 72, Rows: 520, Cols: 200}, {Batch: 20, Rows: 1100, Cols: 40}, {Batch: 90, Rows: 64, Cols: 420}}
	for _, s := range shapes {
		for _, kind := range []string{"unstructured", "nm", "nm1", "nm3", "block", "ones"} {
			m := randomMask(r, kind, s.Rows, s.Cols, 0.2)
			for _, kern := range []string{"dense", "lists", "block", "nm2", "nm1", "nm3"} {
				for _, dir := range []Dir{Forward, Input, Weight} {
					name := fmt.Sprintf("%dx%dx%d/%s/%s/%d", s.Batch, s.Rows, s.Cols, kind, kern, dir)
					t.Run(name, func(t *testing.T) {
						var k Kernel
						switch kern {
						case "dense":
							k = NewDense(s, dir)
						case "block":
							k = NewBlock(s, dir)
						case "nm2":
							k = NewNM(s, dir, 2)
						case "nm1":
							k = NewNM(s, dir, 1)
						case "nm3":
							k = NewNM(s, dir, 3)
						default:
							if dir == Weight {
								k = NewSDDMM(s)
							} else {
								k = NewLists(s, dir)
							}
						}
						k.Build(m)
						aCols := s.Rows
						if dir == Input {
							aCols = s.Cols
						}
						a := randVec(r, s.Batch*aCols)
						w := randVec(r, s.Rows*s.Cols)
						dy := randVec(r, s.Batch*s.Cols)
						outCols := map[Dir]int{Forward: s.Cols, Input: s.Rows, Weight: s.Cols}[dir]
						outRows := s.Batch
						if dir == Weight {
							outRows = s.Rows
						}
						var ep *Epilogue
						switch dir {
						case Forward:
							ep = &Epilogue{Bias: randVec(r, outCols), Act: gemm.ReLU}
						case Input:
							ep = &Epilogue{Act: gemm.Tanh, Pre: randVec(r, outRows*outCols)}
						}
						want, mag := reference(dir, s, a, w, m, dy, ep)
						// Two workers first: one worker after them takes all
						// of the work into buffers sized for half of it.
						// Three share the 2:4 weight gradient's transposes.
						for _, p := range []*pool.Pool{p2, nil, p3} {
							c := randVec(r, outRows*outCols) // garbage the kernel must overwrite
							k.Run(p, a, w, dy, c, ep)
							for i := range c {
								if d := math.Abs(float64(c[i]) - want[i]); d > 1e-5*mag[i]+1e-6 {
									t.Fatalf("workers %v: element %d: got %g, want %g", p != nil, i, c[i], want[i])
								}
							}
						}
					})
				}
			}
		}
	}
}

// TestNMWeightGradientAnyWorkers checks that the 2:4 weight gradient gives
// the same bits however its blocks of items fall to the workers: with one,
// each block is the first side's; with two, the sides claim them as they
// go, differently from run to run.
func TestNMWeightGradientAnyWorkers(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	p2 := pool.New(2)
	defer p2.Close()
	s := Shape{Batch: 300, Rows: 1100, Cols: 70} // three chunks, the last short; nine blocks, the last short
	m := randomMask(r, "nm", s.Rows, s.Cols, 0)
	k := NewNM(s, Weight, 2)
	k.Build(m)
	x, dy := randVec(r, s.Batch*s.Rows), randVec(r, s.Batch*s.Cols)
	want := make([]float32, s.Rows*s.Cols)
	k.Run(nil, x, nil, dy, want, nil)
	for rep := range 10 {
		got := randVec(r, s.Rows*s.Cols)
		k.Run(p2, x, nil, dy, got, nil)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("run %d: element %d: two workers %g, one %g", rep, i, got[i], want[i])
			}
		}
	}
}

// TestPortableNMKernels runs the N:4 kernel's portable inner loops (the
// ones a CPU without AVX-512 would get if nmVector were set) through the
// same float64-reference check, so they stay a true description of the
// generated code.
func TestPortableNMKernels(t *testing.T) {
	fwd, dw, dwRuns, dx, pack, vec := nmFwd, nmDW, nmDWRuns, nmDX, nmPack, nmVector
	defer func() { nmFwd, nmDW, nmDWRuns, nmDX, nmPack, nmVector = fwd, dw, dwRuns, dx, pack, vec }()
	nmFwd, nmDW, nmDWRuns, nmDX, nmPack, nmVector = nmFwdTileGo, nmDWGo, nmDWRunsGo, nmDXGo, nmPackGo, true
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for _, s := range []Shape{{Batch: 37, Rows: 52, Cols: 45}, {Batch: 70, Rows: 96, Cols: 64}, {Batch: 300, Rows: 40, Cols: 33}, {Batch: 20, Rows: 1100, Cols: 40}} {
		for _, n := range []int{1, 2, 3} {
			m := randomMask(r, map[int]string{1: "nm1", 2: "nm", 3: "nm3"}[n], s.Rows, s.Cols, 0)
			for _, dir := range []Dir{Forward, Input, Weight} {
				k := NewNM(s, dir, n)
				k.Build(m)
				if n == 3 && dir == Weight {
					continue // no vector path: the general kernels run it (tested above)
				}
				if !k.ok {
					t.Fatalf("%v n=%d dir %d: the mask is not taken as %d:4", s, n, dir, n)
				}
				aCols := map[Dir]int{Forward: s.Rows, Input: s.Cols, Weight: s.Rows}[dir]
				a, w, dy := randVec(r, s.Batch*aCols), randVec(r, s.Rows*s.Cols), randVec(r, s.Batch*s.Cols)
				want, mag := reference(dir, s, a, w, m, dy, nil)
				c := randVec(r, len(want))
				k.Run(nil, a, w, dy, c, nil)
				for i := range c {
					if d := math.Abs(float64(c[i]) - want[i]); d > 1e-5*mag[i]+1e-6 {
						t.Fatalf("%v n=%d dir %d: element %d: got %g, want %g", s, n, dir, i, c[i], want[i])
					}
				}
			}
		}
	}
}

// TestTranspose checks the blocked transpose (16x16 blocks, vectorised on
// AVX-512) against the definition on ragged shapes and strides.
func TestTranspose(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for _, sh := range [][2]int{{16, 16}, {37, 53}, {64, 17}, {130, 100}} {
		rows, cols := sh[0], sh[1]
		lds, ldd := cols+3, rows+5
		src := randVec(r, rows*lds)
		dst := make([]float32, cols*ldd)
		transpose(dst, ldd, src, lds, 0, rows, cols)
		for i := range rows {
			for j := range cols {
				if dst[j*ldd+i] != src[i*lds+j] {
					t.Fatalf("%dx%d: dst[%d,%d] = %g, want %g", rows, cols, j, i, dst[j*ldd+i], src[i*lds+j])
				}
			}
		}
	}
}
