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

// TestSparsitySchemaMatchesTypes: method, method.sparsity (over its
// patterns) and its schedule (over its kinds) have exactly the fields of
// the Go structs. (TestSchemaMatchesTypes cannot see the pattern variants:
// pattern is not a plain enum.)
func TestSparsitySchemaMatchesTypes(t *testing.T) {
	ctx := cuecontext.New()
	def := ctx.CompileBytes(Source, cue.Filename(schemaFile)).LookupPath(cue.MakePath(cue.Def("#Experiment")))
	method := lookupField(def, "method")
	sp := lookupField(method, "sparsity")
	variants := func(s cue.Value, field string, values ...string) []string {
		names := fieldNames(s)
		for _, v := range values {
			for _, n := range fieldNames(s.FillPath(cue.MakePath(cue.Str(field)), v)) {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
		sort.Strings(names)
		return names
	}
	for _, tc := range []struct {
		name string
		got  []string
		typ  any
	}{
		{"method", fieldNames(method), Method{}},
		{"method.sparsity", variants(sp, "pattern", "unstructured", "block", "2:4"), Sparsity{}},
		{"method.sparsity.schedule", variants(lookupField(sp, "schedule"), "kind", "static", "gradual", "reselect"), SparsitySchedule{}},
	} {
		var want []string
		rt := reflect.TypeOf(tc.typ)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			want = append(want, name)
		}
		sort.Strings(want)
		if !slices.Equal(tc.got, want) {
			t.Errorf("%s: schema has %v\nGo struct has %v", tc.name, tc.got, want)
		}
	}
}

const sparseBase = `name: "s"
dataset: {name: "blobs"}
model: {kind: "mlp", hidden: [8]}
`

func TestSparsityDefaults(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Sparsity
	}{
		{`method: sparsity: {}`, Sparsity{Layers: []string{"*"}, Pattern: "unstructured", Density: 0.1, Init: "random",
			Allocation: "uniform", Schedule: SparsitySchedule{Kind: "static"}}},
		{`method: sparsity: {pattern: "2:4", schedule: kind: "reselect"}`, Sparsity{Layers: []string{"*"}, Pattern: "2:4", N: 2, M: 4,
			Density: 0.5, Init: "random", Allocation: "uniform", Schedule: SparsitySchedule{Kind: "reselect", Every: 100}}},
		{`method: sparsity: {pattern: "block", density: 0.2, schedule: {kind: "gradual", end: 50, dense_at: 0.75}}`,
			Sparsity{Layers: []string{"*"}, Pattern: "block", Block: []int{32, 32}, Density: 0.2, Init: "random", Allocation: "uniform",
				Schedule: SparsitySchedule{Kind: "gradual", InitialDensity: 1, End: 50, Every: 100, DenseAt: 0.75}}},
	} {
		e, l := LoadBytes("s.cue", []byte(sparseBase+tc.spec))
		if l != nil {
			t.Fatalf("%s: %v", tc.spec, l)
		}
		if got := *e.Method.Sparsity; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tc.spec, got, tc.want)
		}
	}
	// A spec without a method keeps the canonical form (and plan hash) it had.
	e, l := LoadBytes("s.cue", []byte(sparseBase))
	if l != nil {
		t.Fatal(l)
	}
	b, _ := e.Canonical()
	if strings.Contains(string(b), "method") {
		t.Errorf("canonical spec without a method mentions one: %s", b)
	}
}

// TestSparsityErrors: the constraints known before running are checked by
// the schema, at the field that breaks them.
func TestSparsityErrors(t *testing.T) {
	for _, tc := range []struct{ spec, path, msg string }{
		{`method: sparsity: {pattern: "4:4"}`, "method.sparsity.m", "must be > 4"},
		{`method: sparsity: {pattern: "2:4", density: 0.3}`, "method.sparsity.density", "conflicting values 0.5 and 0.3"},
		{`method: sparsity: {density: 0}`, "method.sparsity.density", "must be > 0"},
		{`method: sparsity: {density: 1.5}`, "method.sparsity.density", "must be <= 1"},
		{`method: sparsity: {pattern: "2-4"}`, "method.sparsity.pattern", "must match"},
		{`method: sparsity: {schedule: {kind: "gradual"}}`, "method.sparsity.schedule.end", "missing required field"},
		{`method: sparsity: {density: 0.5, schedule: {kind: "gradual", end: 9, initial_density: 0.2}}`, "method.sparsity.schedule.initial_density", "must be > 0.5"},
		{`method: sparsity: {schedule: {kind: "gradual", start: 10, end: 10}}`, "method.sparsity.schedule.end", "must be > 10"},
		{`method: sparsity: {schedule: {dense_at: 1.5}}`, "method.sparsity.schedule.dense_at", ""},
		{`method: sparsity: {pattern: "block", block: [0, 4]}`, "method.sparsity.block[0]", "must be > 0"},
		{`method: sparsity: {patern: "2:4"}`, "method.sparsity.patern", `did you mean "pattern"`},
		{`method: sparsity: {schedule: {every: 5}}`, "method.sparsity.schedule.every", "unknown field"},
	} {
		_, l := LoadBytes("s.cue", []byte(sparseBase+tc.spec))
		if len(l) == 0 {
			t.Errorf("%s: no error", tc.spec)
			continue
		}
		d := l[0]
		if d.Path != tc.path || !strings.Contains(d.Summary, tc.msg) || d.Range.File != "s.cue" || d.Range.Start.Line != 4 {
			t.Errorf("%s: got %s at %s (%s:%d), want %q at %s, line 4", tc.spec, d.Summary, d.Path, d.Range.File, d.Range.Start.Line, tc.msg, tc.path)
		}
	}
}
