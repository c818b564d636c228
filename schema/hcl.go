package schema

import (
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/expc-dev/expc/diag"
)

// hclToCUE turns an HCL spec into a CUE syntax tree whose positions are the
// HCL file's, so that the one CUE schema validates it and its errors point
// at HCL lines. Blocks (`dataset { ... }`) and object values
// (`schedule = { ... }`) become structs, tuples become lists, other
// expressions must be constants (no variables or function calls).
func hclToCUE(filename string, src []byte) (*ast.File, *positions, diag.List) {
	f, hd := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	c := &hclConv{src: src, tf: token.NewFile(filename, -1, len(src)), pos: newPositions()}
	c.tf.SetLinesForContent(src)
	c.hclDiags(hd)
	if c.diags.HasErrors() {
		return nil, nil, c.diags
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil, nil, diag.List{diag.Errorf(diag.File(filename), "", CodeInternal, "HCL body of unexpected type %T", f.Body)}
	}
	file := &ast.File{Filename: filename, Decls: c.body("", body)}
	if c.diags.HasErrors() {
		return nil, nil, c.diags
	}
	return file, c.pos, nil
}

type hclConv struct {
	src   []byte
	tf    *token.File
	pos   *positions
	diags diag.List
}

// body converts the attributes and blocks of one HCL body, in source order.
func (c *hclConv) body(path string, b *hclsyntax.Body) []ast.Decl {
	type item struct {
		at   int
		decl ast.Decl
	}
	var items []item
	seen := map[string]hcl.Range{}
	for name, a := range b.Attributes {
		p := joinPath(path, name)
		seen[name] = a.NameRange
		c.pos.fields[p] = c.rng(a.SrcRange)
		items = append(items, item{a.SrcRange.Start.Byte, &ast.Field{Label: c.label(name, a.NameRange), Value: c.expr(p, a.Expr)}})
	}
	for _, blk := range b.Blocks {
		p := joinPath(path, blk.Type)
		if prev, dup := seen[blk.Type]; dup {
			c.errorf(blk.TypeRange, p, CodeSyntax, "duplicate %q: it is already set at line %d", blk.Type, prev.Start.Line)
			continue
		}
		seen[blk.Type] = blk.TypeRange
		if len(blk.Labels) > 0 {
			c.errorf(blk.LabelRanges[0], p, CodeSyntax, "block %q takes no labels", blk.Type)
			continue
		}
		whole := hcl.RangeBetween(blk.TypeRange, blk.CloseBraceRange)
		c.pos.fields[p] = c.rng(whole)
		c.pos.values[p] = c.rng(hcl.RangeBetween(blk.OpenBraceRange, blk.CloseBraceRange))
		s := &ast.StructLit{
			Lbrace: c.at(blk.OpenBraceRange.Start),
			Elts:   c.body(p, blk.Body),
			Rbrace: c.at(blk.CloseBraceRange.Start),
		}
		items = append(items, item{blk.TypeRange.Start.Byte, &ast.Field{Label: c.label(blk.Type, blk.TypeRange), Value: s}})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].at < items[j].at })
	decls := make([]ast.Decl, len(items))
	for i, it := range items {
		decls[i] = it.decl
	}
	return decls
}

// expr converts one HCL expression; path is where its value goes.
func (c *hclConv) expr(path string, e hclsyntax.Expression) ast.Expr {
	r := e.Range()
	c.pos.values[path] = c.rng(r)
	switch e := e.(type) {
	case *hclsyntax.ParenthesesExpr:
		return c.expr(path, e.Expression)
	case *hclsyntax.TupleConsExpr:
		l := &ast.ListLit{Lbrack: c.at(r.Start), Rbrack: c.at(hcl.Pos{Byte: r.End.Byte - 1})}
		for i, x := range e.Exprs {
			p := path + "[" + strconv.Itoa(i) + "]"
			c.pos.fields[p] = c.rng(x.Range())
			l.Elts = append(l.Elts, c.expr(p, x))
		}
		return l
	case *hclsyntax.ObjectConsExpr:
		s := &ast.StructLit{Lbrace: c.at(r.Start), Rbrace: c.at(hcl.Pos{Byte: r.End.Byte - 1})}
		for _, it := range e.Items {
			name := hcl.ExprAsKeyword(it.KeyExpr)
			if name == "" {
				k, d := it.KeyExpr.Value(nil)
				if d.HasErrors() || k.IsNull() || !k.IsKnown() || k.Type() != cty.String {
					c.errorf(it.KeyExpr.Range(), path, CodeSyntax, "object keys must be names or strings")
					continue
				}
				name = k.AsString()
			}
			p := joinPath(path, name)
			c.pos.fields[p] = c.rng(hcl.RangeBetween(it.KeyExpr.Range(), it.ValueExpr.Range()))
			s.Elts = append(s.Elts, &ast.Field{Label: c.label(name, it.KeyExpr.Range()), Value: c.expr(p, it.ValueExpr)})
		}
		return s
	}
	v, d := e.Value(nil)
	if d.HasErrors() {
		c.hclDiags(d)
		return ast.NewNull()
	}
	return c.value(path, v, r)
}

// value converts a constant cty value (all of it at one position).
func (c *hclConv) value(path string, v cty.Value, r hcl.Range) ast.Expr {
	p := c.at(r.Start)
	switch {
	case v.IsNull():
		n := ast.NewNull()
		n.ValuePos = p
		return n
	case !v.IsKnown():
		c.errorf(r, path, CodeSyntax, "value is not known before running")
		return ast.NewNull()
	}
	t := v.Type()
	switch {
	case t == cty.String:
		s := ast.NewString(v.AsString())
		s.ValuePos = p
		return s
	case t == cty.Bool:
		b := ast.NewBool(v.True())
		b.ValuePos = p
		return b
	case t == cty.Number:
		return &ast.BasicLit{ValuePos: p, Kind: numKind(v.AsBigFloat()), Value: numText(v.AsBigFloat())}
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		l := &ast.ListLit{Lbrack: p}
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			_, ev := it.Element()
			l.Elts = append(l.Elts, c.value(path+"["+strconv.Itoa(i)+"]", ev, r))
		}
		return l
	case t.IsObjectType() || t.IsMapType():
		s := &ast.StructLit{Lbrace: p}
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			s.Elts = append(s.Elts, &ast.Field{Label: c.label(k.AsString(), r), Value: c.value(joinPath(path, k.AsString()), ev, r)})
		}
		return s
	}
	c.errorf(r, path, CodeSyntax, "unsupported value of type %s", t.FriendlyName())
	return ast.NewNull()
}

func numKind(f *big.Float) token.Token {
	if f.IsInt() {
		return token.INT
	}
	return token.FLOAT
}

func numText(f *big.Float) string {
	if f.IsInt() {
		return f.Text('f', 0)
	}
	return f.Text('g', -1)
}

func (c *hclConv) label(name string, r hcl.Range) ast.Label {
	l := ast.NewStringLabel(name)
	switch l := l.(type) {
	case *ast.Ident:
		l.NamePos = c.at(r.Start)
	case *ast.BasicLit:
		l.ValuePos = c.at(r.Start)
	}
	return l
}

// at is the CUE position of an HCL position (by byte offset).
func (c *hclConv) at(p hcl.Pos) token.Pos {
	return c.tf.Pos(p.Byte, token.NoRelPos)
}

// rng converts an HCL range; HCL counts columns in characters, diagnostics
// in bytes, so line and column are recomputed from the byte offsets.
func (c *hclConv) rng(r hcl.Range) diag.Range {
	return diag.Range{File: r.Filename, Start: posAt(c.src, r.Start.Byte), End: posAt(c.src, r.End.Byte)}
}

func (c *hclConv) errorf(r hcl.Range, path, code, format string, args ...any) {
	c.diags = append(c.diags, diag.Errorf(c.rng(r), path, code, format, args...))
}

// hclDiags keeps HCL's own diagnostics (syntax errors, variables in a spec).
func (c *hclConv) hclDiags(ds hcl.Diagnostics) {
	for _, d := range ds {
		sev := diag.Error
		if d.Severity == hcl.DiagWarning {
			sev = diag.Warning
		}
		var r diag.Range
		if d.Subject != nil {
			r = c.rng(*d.Subject)
		}
		summary := d.Summary
		if d.Detail != "" {
			summary = fmt.Sprintf("%s: %s", d.Summary, d.Detail)
		}
		x := diag.New(sev, r, "", CodeSyntax, lowerFirst(strings.TrimSuffix(summary, ".")))
		c.diags = append(c.diags, x)
	}
}

func lowerFirst(s string) string {
	if len(s) > 1 && s[0] >= 'A' && s[0] <= 'Z' && !(s[1] >= 'A' && s[1] <= 'Z') {
		return string(s[0]+'a'-'A') + s[1:]
	}
	return s
}
