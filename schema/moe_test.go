package schema

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

// TestMoESchemaMatchesTypes: #MoE, #Router and #Anneal have exactly the
// json fields of MoE (the router's being a subset) and Anneal.
func TestMoESchemaMatchesTypes(t *testing.T) {
	root := cuecontext.New().CompileBytes(Source, cue.Filename(schemaFile))
	jsonNames := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			out = append(out, name)
		}
		sort.Strings(out)
		return out
	}
	def := func(name string) []string {
		v := root.LookupPath(cue.MakePath(cue.Def(name)))
		if err := v.Err(); err != nil {
			t.Fatal(err)
		}
		return fieldNames(v)
	}
	if got, want := def("#MoE"), jsonNames(MoE{}); !slices.Equal(got, want) {
		t.Errorf("#MoE has %v\nMoE has %v", got, want)
	}
	for _, f := range def("#Router") {
		if !slices.Contains(jsonNames(MoE{}), f) {
			t.Errorf("#Router field %s is not in MoE", f)
		}
	}
	if got, want := def("#Anneal"), jsonNames(Anneal{}); !slices.Equal(got, want) {
		t.Errorf("#Anneal has %v\nAnneal has %v", got, want)
	}
}

func TestMoEDefaults(t *testing.T) {
	e, l := LoadBytes("m.cue", []byte(`name: "m"
dataset: name: "tokens"
model: {kind: "transformer", moe: {experts: 4, gate: "dense", temperature_schedule: end: 0.5}}
`))
	if l != nil {
		t.Fatal(l)
	}
	want := MoE{Experts: 4, TopK: 4, Gate: "dense", Temperature: 1, TemperatureSchedule: &Anneal{Kind: "linear", End: 0.5},
		RouterActivation: "none", LoadBalance: 0.01, ZLoss: 0.001, Hidden: 256, Activation: "relu", Layers: []int{1}}
	if !reflect.DeepEqual(*e.Model.MoE, want) {
		t.Errorf("moe = %+v\nwant  %+v", *e.Model.MoE, want)
	}
	if m := e.Model; m.DModel != 64 || m.Layers != 2 || m.Heads != 4 || m.FFN != 256 || !m.Causal {
		t.Errorf("transformer defaults: %+v", m)
	}
	if d := e.Dataset; d.Samples != 4096 || d.SeqLen != 32 || d.Vocab != 32 || d.Sources != nil {
		t.Errorf("tokens defaults: %+v", d)
	}
}

func TestMoEBadSpecs(t *testing.T) {
	for _, tc := range []struct{ name, src, code, msg string }{
		{"top_k above experts", `name: "m", dataset: name: "blobs"
model: {kind: "mlp", hidden: [8], moe: {experts: 2, top_k: 3}}`, CodeRange, "model.moe.top_k"},
		{"hidden in a router", `name: "m", dataset: name: "mixture_regression"
model: {kind: "gaussian_moe", moe: {hidden: 8}}`, CodeUnknownKey, "model.moe"},
		{"zero temperature", `name: "m", dataset: name: "blobs"
model: {kind: "mlp", hidden: [8], moe: temperature: 0}`, CodeRange, "model.moe.temperature"},
		{"unknown source", `name: "m", model: kind: "transformer"
dataset: {name: "tokens", sources: ["copy", "sort"]}`, CodeEnum, "dataset.sources[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, l := LoadBytes("s.cue", []byte(tc.src))
			if len(l) == 0 {
				t.Fatal("no diagnostics")
			}
			if l[0].Code != tc.code || !strings.Contains(l[0].Summary, tc.msg) || l[0].Range.Start.Line != 2 {
				t.Errorf("got %s %v %q", l[0].Code, l[0].Range.Start, l[0].Summary)
			}
		})
	}
}
