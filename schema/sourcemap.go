package schema

import (
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"

	"github.com/expc-dev/expc/diag"
)

// positions records where the user wrote each field: values maps a path to
// the range of its value (this becomes SourceMap.Fields), fields to the range
// of the whole field, label included (used to point at unknown keys).
type positions struct {
	values map[string]diag.Range
	fields map[string]diag.Range
}

func newPositions() *positions {
	return &positions{values: map[string]diag.Range{}, fields: map[string]diag.Range{}}
}

// walkSource reads positions off the user's CUE value (before unification
// with the schema, so that every position is in a user file).
func walkSource(v cue.Value, files map[string][]byte, display func(string) string) *positions {
	p := newPositions()
	var walk func(path string, v cue.Value)
	walk = func(path string, v cue.Value) {
		if path != "" {
			p.record(path, v, files, display)
		}
		switch v.IncompleteKind() {
		case cue.StructKind:
			it, err := v.Fields()
			if err != nil {
				return
			}
			for it.Next() {
				walk(joinPath(path, it.Selector().Unquoted()), it.Value())
			}
		case cue.ListKind:
			it, err := v.List()
			if err != nil {
				return
			}
			for i := 0; it.Next(); i++ {
				walk(path+"["+strconv.Itoa(i)+"]", it.Value())
			}
		}
	}
	walk("", v)
	return p
}

func (p *positions) record(path string, v cue.Value, files map[string][]byte, display func(string) string) {
	conv := func(n ast.Node) (diag.Range, bool) {
		return nodeRange(n.Pos(), n.End(), files, display)
	}
	switch n := v.Source().(type) {
	case *ast.Field:
		if r, ok := conv(n); ok {
			p.fields[path] = r
		}
		if r, ok := conv(n.Value); ok {
			p.values[path] = r
		}
		return
	case ast.Expr:
		if r, ok := conv(n); ok {
			p.values[path], p.fields[path] = r, r
		}
		return
	}
	if r, ok := nodeRange(v.Pos(), v.Pos(), files, display); ok {
		p.values[path], p.fields[path] = r, r
	}
}

// nodeRange converts a CUE span to a Range when it lies in a user file.
func nodeRange(start, end token.Pos, files map[string][]byte, display func(string) string) (diag.Range, bool) {
	if !start.IsValid() {
		return diag.Range{}, false
	}
	name := display(start.Filename())
	if _, ok := files[name]; !ok {
		return diag.Range{}, false
	}
	r := diag.Range{File: name, Start: toPos(start)}
	r.End = r.Start
	if end.IsValid() && end.Filename() == start.Filename() {
		r.End = toPos(end)
	}
	return r, true
}

func toPos(p token.Pos) diag.Pos {
	pp := p.Position()
	return diag.Pos{Line: pp.Line, Col: pp.Column, Offset: pp.Offset}
}

// joinPath appends a field name to a dotted path.
func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// formatPath turns CUE's error path (["model","hidden","1"]) into the
// dotted form used everywhere else ("model.hidden[1]").
func formatPath(elems []string) string {
	var b strings.Builder
	for _, e := range elems {
		if isIndex(e) {
			b.WriteString("[" + e + "]")
			continue
		}
		if u, err := strconv.Unquote(e); err == nil {
			e = u
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e)
	}
	return b.String()
}

func isIndex(e string) bool {
	if e == "" {
		return false
	}
	for _, c := range e {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
