package schema

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/expc-dev/expc/diag"
)

func mustLoad(t *testing.T, path string) *Experiment {
	t.Helper()
	e, l := Load(path)
	if l != nil {
		var b bytes.Buffer
		diag.Render(&b, l, nil, false)
		t.Fatalf("Load(%s):\n%s", path, b.String())
	}
	return e
}

func TestLoadExampleFillsDefaults(t *testing.T) {
	e := mustLoad(t, "testdata/mlp.cue")
	want := Experiment{
		Name: "fmnist-mlp",
		Dataset: Dataset{Name: "fashion-mnist", Batch: 128, EvalBatch: 128, Shuffle: true, Normalize: true,
			EvalFraction: 0.2, Dir: "/usr/share/datasets/fashion-mnist"},
		Model: Model{Kind: "mlp", Hidden: []int{512, 256}, Activation: "relu", Init: "he"},
		Loss:  Loss{Kind: "cross_entropy", LabelSmoothing: 0.1},
		Optimizer: Optimizer{Kind: "adamw", LR: 0.001, WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
			Schedule: Schedule{Kind: "cosine", WarmupSteps: 200}},
		Train:   Train{Epochs: 8, Seed: 1, LogEvery: 50},
		Backend: "cpu",
	}
	got := *e
	got.Source = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	sm := e.Source
	if string(sm.Files["testdata/mlp.cue"][:4]) != "name" {
		t.Errorf("Files: %v", sm.Files)
	}
	for path, want := range map[string][2]int{ // line, col
		"":                     {1, 1},
		"name":                 {1, 7},
		"model.hidden":         {3, 30},
		"model.hidden[1]":      {3, 36},
		"optimizer.lr":         {5, 32},
		"optimizer.beta1":      {5, 12}, // defaulted: the enclosing struct
		"optimizer.schedule.x": {5, 49},
		"train.log_every":      {6, 8},
	} {
		r := sm.Pos(path)
		if r.File != "testdata/mlp.cue" || r.Start.Line != want[0] || r.Start.Col != want[1] {
			t.Errorf("Pos(%q) = %+v, want %d:%d", path, r, want[0], want[1])
		}
	}
	if r := sm.Fields["model.hidden[1]"]; r.End.Col != 39 {
		t.Errorf("model.hidden[1] ends at %+v, want col 39", r.End)
	}
}

func TestDefaultsByKind(t *testing.T) {
	const base = `name: "d", dataset: name: "blobs", model: {kind: "mlp", hidden: [8]}` + "\n"
	e, l := LoadBytes("d.cue", []byte(base))
	if l != nil {
		t.Fatal(l)
	}
	o := e.Optimizer
	if o.Kind != "sgd" || o.LR != 0.05 || o.Momentum != 0.9 || o.WeightDecay != 0 || o.Beta1 != 0 || o.Schedule.Kind != "constant" {
		t.Errorf("sgd defaults: %+v", o)
	}
	if e.Train.Epochs != 1 || e.Train.Steps != 0 || e.Train.Seed != 1 || e.Train.LogEvery != 50 {
		t.Errorf("train defaults: %+v", e.Train)
	}
	if d := e.Dataset; d.Samples != 2000 || d.Centers != 3 || d.Dim != 2 || d.Noise != 1.0 || d.Dir != "" || d.EvalFraction != 0.2 {
		t.Errorf("blobs defaults: %+v", d)
	}
	if e.Loss.Kind != "cross_entropy" || e.Backend != "cpu" {
		t.Errorf("loss/backend defaults: %+v %q", e.Loss, e.Backend)
	}

	e, l = LoadBytes("d.cue", []byte(base+`train: steps: 300, dataset: batch: 32, optimizer: kind: "adamw"`))
	if l != nil {
		t.Fatal(l)
	}
	if e.Train.Epochs != 0 || e.Train.Steps != 300 {
		t.Errorf("steps > 0 must leave epochs 0: %+v", e.Train)
	}
	if e.Dataset.EvalBatch != 32 {
		t.Errorf("eval_batch defaults to batch: %+v", e.Dataset)
	}
	if o := e.Optimizer; o.LR != 0.001 || o.WeightDecay != 0.01 || o.Momentum != 0 || o.Eps != 1e-8 {
		t.Errorf("adamw defaults: %+v", o)
	}

	e, l = LoadBytes("d.cue", []byte(`name: "c", model: {kind: "mlp", hidden: [8]}, dataset: {name: "csv", train: "t.csv", features: 4, classes: 3}`))
	if l != nil {
		t.Fatal(l)
	}
	if d := e.Dataset; d.LabelColumn != "label" || !d.Header || d.Train != "t.csv" || d.Features != 4 {
		t.Errorf("csv defaults: %+v", d)
	}
	if got := e.Resolve("dataset.train", e.Dataset.Train); got != "t.csv" {
		t.Errorf("Resolve: %q", got)
	}
}

func TestHCLAndCUEDecodeAlike(t *testing.T) {
	c := mustLoad(t, "testdata/mlp.cue")
	h := mustLoad(t, "testdata/mlp.hcl")
	cs, hs := c.Source, h.Source
	c.Source, h.Source = nil, nil
	if !reflect.DeepEqual(c, h) {
		t.Errorf("cue %+v\nhcl %+v", c, h)
	}
	cb, _ := c.Canonical()
	hb, _ := h.Canonical()
	if !bytes.Equal(cb, hb) {
		t.Errorf("canonical forms differ:\n%s\n%s", cb, hb)
	}
	if r := hs.Fields["model.hidden[1]"]; r.File != "testdata/mlp.hcl" || r.Start.Line != 11 || r.Start.Col != 22 || r.End.Col != 25 {
		t.Errorf("hcl model.hidden[1] at %+v", r)
	}
	if r := hs.Pos("optimizer.schedule.warmup_steps"); r.Start.Line != 25 || r.Start.Col != 20 {
		t.Errorf("hcl warmup_steps at %+v", r)
	}
	if cs.Files["testdata/mlp.cue"] == nil || hs.Files["testdata/mlp.hcl"] == nil {
		t.Error("Files missing")
	}
}

func TestCanonicalIsDeterministic(t *testing.T) {
	a, _ := mustLoad(t, "testdata/mlp.cue").Canonical()
	src, _ := os.ReadFile("testdata/mlp.cue")
	e, l := LoadBytes("elsewhere/other-name.cue", append([]byte("// a comment moves every line\n"), src...))
	if l != nil {
		t.Fatal(l)
	}
	b, err := e.Canonical()
	if err != nil || !bytes.Equal(a, b) {
		t.Errorf("canonical differs (err %v):\n%s\n%s", err, a, b)
	}
	if bytes.Contains(a, []byte("Source")) || !bytes.Contains(a, []byte(`"eval_batch":128`)) {
		t.Errorf("canonical form: %s", a)
	}
}

func TestGitOpsImports(t *testing.T) {
	for _, path := range []string{"testdata/gitops/fmnist/mlp.cue", "testdata/gitops/fmnist"} {
		e := mustLoad(t, path)
		if e.Name != "fmnist-mlp-gitops" || e.Dataset.Batch != 256 || e.Optimizer.Kind != "adamw" ||
			e.Train.Epochs != 8 || e.Loss.LabelSmoothing != 0.1 || e.Optimizer.Schedule.WarmupSteps != 200 {
			t.Errorf("%s: %+v", path, e)
		}
		base := filepath.Join("testdata", "gitops", "base", "base.cue")
		if r := e.Source.Pos("loss.label_smoothing"); r.File != base || r.Start.Line != 6 {
			t.Errorf("%s: loss.label_smoothing at %+v, want %s:6", path, r, base)
		}
		if r := e.Source.Pos("dataset.batch"); r.File != filepath.Join("testdata", "gitops", "fmnist", "mlp.cue") || r.Start.Line != 9 {
			t.Errorf("%s: dataset.batch at %+v", path, r)
		}
		if e.Source.Files[base] == nil {
			t.Errorf("%s: base file bytes missing: %v", path, keys(e.Source.Files))
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

const okModel = `model: {kind: "mlp", hidden: [8]}` + "\n"

// TestBadSpecs: every failure is a positioned diagnostic with a stable code.
func TestBadSpecs(t *testing.T) {
	for _, tc := range []struct {
		name, file, src string
		code            string
		line, col       int
		phrase          string
		detail          string
	}{
		{"misspelled key", "s.cue", `name: "x"
dataset: name: "fashion-mnist"
` + okModel + `optimizer: {kind: "sgd", lerning_rate: 0.1}`,
			CodeUnknownKey, 4, 26, `unknown field "lerning_rate" in optimizer; did you mean "lr"?`, "allowed fields in optimizer: kind, lr, momentum"},
		{"key of another kind", "s.cue", `name: "x"
dataset: name: "fashion-mnist"
` + okModel + `optimizer: {kind: "adamw", momentum: 0.9}`,
			CodeUnknownKey, 4, 28, `unknown field "momentum" in optimizer`, `"momentum" is only allowed when optimizer.kind is "sgd"`},
		{"unknown top-level key", "s.cue", `name: "x"
dataset: name: "fashion-mnist"
` + okModel + `epochs: 3`,
			CodeUnknownKey, 4, 1, `unknown field "epochs"`, "allowed fields: backend, dataset"},
		{"key of the default kind", "s.cue", `name: "x", dataset: name: "moons"
` + okModel + `optimizer: schedule: {min_lr: 0.1}`,
			CodeUnknownKey, 3, 23, `unknown field "min_lr" in optimizer.schedule`, `only allowed when optimizer.schedule.kind is "cosine"`},
		{"missing discriminator", "s.cue", `name: "x", dataset: {}
` + okModel,
			CodeMissing, 1, 21, `missing required field dataset.name`, `one of "fashion-mnist", "idx"`},
		{"wrong type", "s.cue", `name: "x"
dataset: name: "fashion-mnist"
` + okModel + `optimizer: {kind: "sgd", lr: "fast"}`,
			CodeType, 4, 30, `optimizer.lr: expected number, got string "fast"`, ""},
		{"negative lr", "s.cue", `name: "x"
dataset: name: "fashion-mnist"
` + okModel + `optimizer: {kind: "sgd", lr: -0.1}`,
			CodeRange, 4, 30, `optimizer.lr must be > 0, got -0.1`, ""},
		{"zero batch", "s.cue", `name: "x"
dataset: {name: "fashion-mnist", batch: 0}
` + okModel,
			CodeRange, 2, 41, `dataset.batch must be > 0, got 0`, ""},
		{"momentum out of range", "s.cue", `name: "x", dataset: name: "moons"
` + okModel + `optimizer: momentum: 1`,
			CodeRange, 3, 22, `optimizer.momentum must be < 1, got 1`, ""},
		{"bad hidden width", "s.cue", `name: "x", dataset: name: "moons"
model: {kind: "mlp", hidden: [8, 0]}`,
			CodeRange, 2, 34, `model.hidden[1] must be > 0, got 0`, ""},
		{"empty hidden", "s.cue", `name: "x", dataset: name: "moons"
model: {kind: "mlp", hidden: []}`,
			CodeRange, 2, 30, `model.hidden must not be empty`, ""},
		{"bad name", "s.cue", `name: "My Run", dataset: name: "moons"
` + okModel,
			CodeRange, 1, 7, `name must match ^[a-z0-9][a-z0-9._-]*$, got "My Run"`, ""},
		{"unknown dataset name", "s.cue", `name: "x"
dataset: {name: "mnist"}
` + okModel,
			CodeEnum, 2, 17, `dataset.name must be one of "fashion-mnist", "idx", "csv", "blobs", "moons", "tokens", "mixture_regression"; got "mnist"; did you mean "fashion-mnist"?`, ""},
		{"bad backend", "s.cue", `name: "x", dataset: name: "moons", backend: "cdua"
` + okModel,
			CodeEnum, 1, 45, `backend must be one of "cpu", "cuda"; got "cdua"; did you mean "cuda"?`, ""},
		{"missing name", "s.cue", `dataset: name: "moons"
` + okModel,
			CodeMissing, 1, 1, `missing required field name`, ""},
		{"missing dataset", "s.cue", `name: "x"
` + okModel,
			CodeMissing, 1, 1, `missing required field dataset`, ""},
		{"missing idx files", "s.cue", `name: "x"
dataset: {name: "idx", train_labels: "l.idx"}
` + okModel,
			CodeMissing, 2, 10, `missing required field dataset.train_images`, ""},
		{"missing model kind", "s.cue", `name: "x", dataset: name: "moons"
model: {hidden: [8]}`,
			CodeMissing, 2, 8, `missing required field model.kind`, `it must be one of "mlp", "transformer", "gaussian_moe"`},
		{"syntax error", "s.cue", `name: "x"
dataset: {name: "moons"
` + okModel,
			CodeSyntax, 3, 35, `expected '}'`, ""},
		{"unresolved reference", "s.cue", `name: "x", dataset: {name: "moons", batch: size}
` + okModel,
			CodeInvalid, 1, 44, `reference "size" not found`, ""},
		{"empty file", "s.cue", " \n\t\n", CodeEmpty, 0, 0, "spec is empty", ""},
		{"binary file", "s.cue", "name: \"x\"\n\x00\x01\x02", CodeBinary, 2, 1, "not a text file", ""},
		{"invalid utf-8", "s.hcl", "name = \"\xff\"", CodeBinary, 1, 9, "not a text file", ""},
		{"hcl unknown key", "s.hcl", `name = "x"
dataset {
  name = "fashion-mnist"
  bach = 3
}
model {
  kind   = "mlp"
  hidden = [8]
}`,
			CodeUnknownKey, 4, 3, `unknown field "bach" in dataset; did you mean "batch"?`, ""},
		{"hcl range", "s.hcl", `name = "x"
dataset { name = "moons" }
model {
  kind   = "mlp"
  hidden = [8, -1]
}`,
			CodeRange, 5, 16, `model.hidden[1] must be > 0, got -1`, ""},
		{"hcl syntax error", "s.hcl", `name = "x"
dataset {
  name =
}`,
			CodeSyntax, 3, 9, "invalid expression", ""},
		{"hcl variable", "s.hcl", `name = run_name`, CodeSyntax, 1, 8, "variables not allowed", ""},
		{"hcl duplicate block", "s.hcl", `name = "x"
dataset { name = "moons" }
dataset { name = "blobs" }`,
			CodeSyntax, 3, 1, `duplicate "dataset"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, l := LoadBytes(tc.file, []byte(tc.src))
			checkOne(t, l, tc.file, tc.code, tc.line, tc.col, tc.phrase, tc.detail)
		})
	}
}

func checkOne(t *testing.T, l diag.List, file, code string, line, col int, phrase, detail string) {
	t.Helper()
	if len(l) == 0 {
		t.Fatal("no diagnostics")
	}
	d := l[0]
	if len(l) != 1 || d.Code != code || d.Range.File != file || d.Range.Start.Line != line || d.Range.Start.Col != col ||
		!strings.Contains(d.Summary, phrase) || !strings.Contains(d.Detail, detail) || d.Severity != diag.Error {
		var b bytes.Buffer
		diag.Render(&b, l, nil, false)
		t.Errorf("got %d diagnostics, first %s %+v\n%s\nwant %s %s:%d:%d %q (detail %q)", len(l), d.Code, d.Range, b.String(), code, file, line, col, phrase, detail)
	}
}

func TestLoadFileErrors(t *testing.T) {
	_, l := Load("testdata/no-such-spec.cue")
	checkOne(t, l, "testdata/no-such-spec.cue", CodeNotFound, 0, 0, "spec not found", "")

	dir := t.TempDir()
	yaml := filepath.Join(dir, "spec.yaml")
	os.WriteFile(yaml, []byte("name: x\n"), 0o644)
	_, l = Load(yaml)
	checkOne(t, l, yaml, CodeFormat, 0, 0, `unsupported spec format ".yaml"`, "")

	// A syntax error in a package file is reported before loading.
	os.WriteFile(filepath.Join(dir, "a.cue"), []byte("package p\nname: \"x\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.cue"), []byte("package p\ndataset: {\n"), 0o644)
	_, l = Load(dir)
	checkOne(t, l, filepath.Join(dir, "b.cue"), CodeSyntax, 2, 12, "expected '}'", "")

	// An import that does not resolve points at the import.
	mod := t.TempDir()
	os.MkdirAll(filepath.Join(mod, "cue.mod"), 0o755)
	os.WriteFile(filepath.Join(mod, "cue.mod", "module.cue"), []byte("module: \"example.com/m@v0\"\nlanguage: version: \"v0.12.0\"\n"), 0o644)
	spec := filepath.Join(mod, "s.cue")
	os.WriteFile(spec, []byte("package s\n\nimport \"example.com/m/nothere\"\n\nnothere.Base\n"), 0o644)
	_, l = Load(spec)
	checkOne(t, l, spec, CodeLoad, 3, 8, "import failed", "")
}

// TestRenderLoadError renders a real diagnostic with its snippet.
func TestRenderLoadError(t *testing.T) {
	src := "name: \"x\"\ndataset: name: \"moons\"\n" + okModel + "optimizer: {kind: \"sgd\", lr: -0.1}\n"
	_, l := LoadBytes("specs/x.cue", []byte(src))
	var b bytes.Buffer
	diag.Render(&b, l, map[string][]byte{"specs/x.cue": []byte(src)}, false)
	want := `specs/x.cue:4:30: error: optimizer.lr must be > 0, got -0.1
    4 | optimizer: {kind: "sgd", lr: -0.1}
      |                              ^^^^
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"kind", "lr", "momentum", "nesterov", "weight_decay", "label_smoothing"}
	for got, want := range map[string]string{
		"lerning_rate":   "lr",
		"learning_rate":  "lr",
		"LR":             "lr",
		"momentun":       "momentum",
		"weightDecay":    "weight_decay",
		"weight-decay":   "weight_decay",
		"labelsmoothing": "label_smoothing",
		"kidn":           "kind",
		"zzz":            "",
		"decay":          "weight_decay",
	} {
		if s := suggest(got, names); s != want {
			t.Errorf("suggest(%q) = %q, want %q", got, s, want)
		}
	}
}
