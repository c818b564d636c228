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

// TestSchemaMatchesTypes: the CUE field names at each level (over every
// variant of a union) are exactly the json names of the Go struct.
func TestSchemaMatchesTypes(t *testing.T) {
	ctx := cuecontext.New()
	def := ctx.CompileBytes(Source, cue.Filename(schemaFile)).LookupPath(cue.MakePath(cue.Def("#Experiment")))
	if err := def.Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		typ  any
	}{
		{"", Experiment{}},
		{"dataset", Dataset{}},
		{"model", Model{}},
		{"loss", Loss{}},
		{"optimizer", Optimizer{}},
		{"optimizer.schedule", Schedule{}},
		{"train", Train{}},
	} {
		s := def
		for _, e := range strings.Split(tc.path, ".") {
			if e != "" {
				s = lookupField(s, e)
			}
		}
		got := allFieldNames(s)
		var want []string
		rt := reflect.TypeOf(tc.typ)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if name != "-" {
				want = append(want, name)
			}
		}
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q: schema has %v\nGo struct has %v", tc.path, got, want)
		}
	}
}

// allFieldNames lists the fields of a schema struct over all its variants.
func allFieldNames(s cue.Value) []string {
	names := fieldNames(s)
	for _, d := range discriminators {
		for _, alt := range enumValues(lookupField(s, d)) {
			for _, n := range fieldNames(s.FillPath(cue.MakePath(cue.Str(d)), alt)) {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	sort.Strings(names)
	return names
}
