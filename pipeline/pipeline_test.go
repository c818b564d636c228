package pipeline

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/expc-dev/expc/backends"
	_ "github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/schema"
)

const blobsSpec = `name: "blobs-mlp"
dataset: {name: "blobs", batch: 32, samples: 600, dim: 6, centers: 4}
model: {kind: "mlp", hidden: [24, 16], activation: "relu"}
loss: {kind: "cross_entropy", label_smoothing: 0.1, z_loss: 0.001}
optimizer: {kind: "sgd", lr: 0.1, momentum: 0.9, weight_decay: 0.0001}
train: {steps: 40, seed: 3}
`

func writeSpec(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "spec.cue")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustBuild(t *testing.T, path string, opts Options) *Result {
	t.Helper()
	res, diags := Build(path, opts)
	if diags.HasErrors() {
		t.Fatalf("build: %v", diags)
	}
	return res
}

// TestPlansAreDeterministic: building the same spec twice gives
// byte-identical plan files.
func TestPlansAreDeterministic(t *testing.T) {
	path := writeSpec(t, blobsSpec)
	a := mustBuild(t, path, Options{OptLevel: 1})
	b := mustBuild(t, path, Options{OptLevel: 1})
	if !bytes.Equal(a.PlanJSON, b.PlanJSON) {
		t.Fatal("two builds of the same spec differ")
	}
	if len(a.Plan.Hash) != 64 {
		t.Fatalf("hash %q is not a sha256", a.Plan.Hash)
	}
}

// TestEveryFieldChangesTheHash edits each leaf of the resolved spec in turn,
// and each compiler option, and checks the hash changes.
func TestEveryFieldChangesTheHash(t *testing.T) {
	exp, diags := schema.Load(writeSpec(t, blobsSpec))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	base, err := Hash(exp, ir.Options{OptLevel: 1}, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{base: "base"}
	n := 0
	forEachLeaf(reflect.ValueOf(exp).Elem(), "", func(path string, v reflect.Value) {
		old := reflect.ValueOf(v.Interface())
		mutate(v)
		h, err := Hash(exp, ir.Options{OptLevel: 1}, "cpu")
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[h]; dup {
			t.Errorf("changing %s gives the same hash as %s", path, prev)
		}
		seen[h] = path
		v.Set(old)
		n++
	})
	if n < 30 {
		t.Fatalf("only %d spec fields were mutated; the walk is missing fields", n)
	}
	for name, opts := range map[string]ir.Options{
		"-O0":            {OptLevel: 0},
		"--disable-pass": {OptLevel: 1, DisabledPass: []string{"cse"}},
	} {
		h, _ := Hash(exp, opts, "cpu")
		if _, dup := seen[h]; dup {
			t.Errorf("option %s does not change the hash", name)
		}
		seen[h] = name
	}
	if h, _ := Hash(exp, ir.Options{OptLevel: 1}, "cuda"); seen[h] != "" {
		t.Error("the target does not change the hash")
	}
}

// forEachLeaf visits every scalar field (and one element of each slice).
func forEachLeaf(v reflect.Value, path string, f func(string, reflect.Value)) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			sf := v.Type().Field(i)
			if !sf.IsExported() || sf.Tag.Get("json") == "-" {
				continue
			}
			forEachLeaf(v.Field(i), path+"."+sf.Name, f)
		}
	case reflect.Slice:
		if v.Len() > 0 {
			forEachLeaf(v.Index(0), path+"[0]", f)
		} else if v.Type().Elem().Kind() == reflect.Int {
			f(path, v)
		}
	case reflect.Pointer: // an optional section: absent is a leaf, present is walked
		if v.IsNil() {
			f(path, v)
		} else {
			forEachLeaf(v.Elem(), path, f)
		}
	default:
		f(path, v)
	}
}

func mutate(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int:
		v.SetInt(v.Int() + 1)
	case reflect.Float64:
		v.SetFloat(v.Float() + 0.125)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.ValueOf(1)))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	}
}

// TestFusedAndUnfusedComputeTheSameStep runs one training step of the -O1
// (fused) and -O0 (unfused) plans on the CPU backend from the same
// initialisation and batch, and compares the loss and every updated
// parameter. Tolerance: relative 1e-5 (float32, different summation order
// in fused epilogues).
func TestFusedAndUnfusedComputeTheSameStep(t *testing.T) {
	path := writeSpec(t, blobsSpec)
	fused := mustBuild(t, path, Options{OptLevel: 1})
	unfused := mustBuild(t, path, Options{OptLevel: 0})
	if len(fused.Plan.Program("train").Kernels) >= len(unfused.Plan.Program("train").Kernels) {
		t.Fatalf("fusion did not reduce the kernel count: %d vs %d",
			len(fused.Plan.Program("train").Kernels), len(unfused.Plan.Program("train").Kernels))
	}
	run := func(p *ir.Plan) (float32, map[string][]float32) {
		be, err := backends.Open("cpu")
		if err != nil {
			t.Fatal(err)
		}
		exe, err := be.Prepare(p)
		if err != nil {
			t.Fatal(err)
		}
		defer exe.Close()
		prog := p.Program("train")
		x, y := exe.F32(prog.Binding("x")), exe.I32(prog.Binding("y"))
		for i := range x {
			x[i] = float32(math.Sin(float64(i) * 0.37))
		}
		for i := range y {
			y[i] = int32(i % p.Data.Classes)
		}
		exe.I32(prog.Binding("step"))[0] = 5
		if err := exe.Run("train"); err != nil {
			t.Fatal(err)
		}
		params := map[string][]float32{}
		for _, b := range p.Buffers {
			if b.Kind.Persistent() {
				params[b.Name] = append([]float32(nil), exe.F32(b.ID)...)
			}
		}
		return exe.F32(prog.Binding("loss"))[0], params
	}
	lf, pf := run(fused.Plan)
	lu, pu := run(unfused.Plan)
	if math.Abs(float64(lf-lu)) > 1e-5*math.Abs(float64(lu)) {
		t.Fatalf("loss: fused %g, unfused %g", lf, lu)
	}
	if len(pf) != len(pu) || len(pf) == 0 {
		t.Fatalf("persistent buffers differ: %d vs %d", len(pf), len(pu))
	}
	for name, a := range pf {
		b := pu[name]
		var num, den float64
		for i := range a {
			d := float64(a[i] - b[i])
			num += d * d
			den += float64(b[i]) * float64(b[i])
		}
		if math.Sqrt(num) > 1e-5*math.Sqrt(den)+1e-12 {
			t.Errorf("%s after one step: relative difference %.3g", name, math.Sqrt(num/den))
		}
	}
}

// TestWriteIsAtomicAndRecordsLast writes a plan and reads it back.
func TestWriteIsAtomicAndRecordsLast(t *testing.T) {
	path := writeSpec(t, blobsSpec)
	res := mustBuild(t, path, Options{OptLevel: 1})
	dir := t.TempDir()
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	out, err := Write(res, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, ".expc/plans/blobs-mlp-") || !strings.HasSuffix(out, ".plan.json") {
		t.Fatalf("plan written to %s", out)
	}
	last, err := LastBuild()
	if err != nil || last != out {
		t.Fatalf("last build %q, %v; want %q", last, err, out)
	}
	p, raw, err := ReadPlan(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, res.PlanJSON) || p.Hash != res.Plan.Hash {
		t.Fatal("plan read back differs from the one written")
	}
	if tm := ReadTimings(out); tm == nil || tm.Hash != p.Hash || len(tm.Passes) == 0 {
		t.Fatalf("timings not stored next to the plan: %+v", tm)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}
