package ir

import (
	"math"
	"strconv"
)

// Parse reads the text form that Print writes. It rejects syntax errors,
// unknown ops, undefined or redefined values and anything the op table's
// type rules reject; errors read "line:col: message" (a *ParseError).
// Checks that need the whole function (roles of updated parameters, output
// names) are Verify's.
//
// Grammar (newlines are significant, except inside a parameter list and
// after "return" or a comma of the return list):
//
//	module  = "module" (ident | string) NL { func }
//	func    = "func" @name "(" [param {"," param}] ")" "{" NL {instr NL} [return NL] "}" NL
//	param   = %name ":" type [role] ["init" "=" string]
//	instr   = [%name {"," %name} "="] op [%arg {"," %arg}] [attrs] ["loc" "(" string ":" int ":" int ")"]
//	return  = "return" [%name "as" string ["updates" %name] {"," ...}]
//	attrs   = "{" [ident "=" value {"," ident "=" value}] "}"
//	value   = "true" | "false" | int | float | "inf" | "-inf" | "nan" | string | "[" [int {"," int}] "]"
func Parse(src string) (*Module, error) {
	p := &parser{lx: lexer{src: src, line: 1, col: 1}}
	m, err := p.module()
	if err != nil {
		return nil, err
	}
	return m, nil
}

type parser struct {
	lx  lexer
	tok token
	// values of the function being parsed
	scope map[string]*Value
}

// bail carries a *ParseError out of the recursive descent.
type bail struct{ err *ParseError }

func (p *parser) fail(t token, format string, args ...any) {
	panic(bail{p.lx.errf(t.line, t.col, format, args...)})
}

func (p *parser) advance() token {
	prev := p.tok
	t, err := p.lx.next()
	if err != nil {
		panic(bail{err.(*ParseError)})
	}
	p.tok = t
	return prev
}

func (p *parser) is(kind tokKind, text string) bool {
	return p.tok.kind == kind && (text == "" || p.tok.text == text)
}

func (p *parser) expect(kind tokKind, text string) token {
	if !p.is(kind, text) {
		want := tokNames[kind]
		if text != "" {
			want = strconv.Quote(text)
		}
		p.fail(p.tok, "expected %s, found %s", want, p.tok)
	}
	return p.advance()
}

func (p *parser) skipNewlines() {
	for p.is(tNewline, "") {
		p.advance()
	}
}

func (p *parser) endLine() {
	if !p.is(tEOF, "") {
		p.expect(tNewline, "")
	}
}

func (p *parser) module() (m *Module, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, ok := r.(bail)
			if !ok {
				panic(r)
			}
			m, err = nil, b.err
		}
	}()
	p.advance()
	p.skipNewlines()
	p.expect(tIdent, "module")
	m = &Module{}
	if p.is(tString, "") {
		m.Name = p.advance().text
	} else {
		m.Name = p.expect(tIdent, "").text
	}
	p.endLine()
	names := map[string]bool{}
	for p.skipNewlines(); !p.is(tEOF, ""); p.skipNewlines() {
		at := p.tok
		f := p.function()
		if names[f.Name] {
			p.fail(at, "function @%s defined twice", f.Name)
		}
		names[f.Name] = true
		m.Funcs = append(m.Funcs, f)
	}
	return m, nil
}

func (p *parser) function() *Func {
	p.expect(tIdent, "func")
	f := &Func{Name: p.expect(tFunc, "").text}
	p.scope = map[string]*Value{}
	p.expect(tPunct, "(")
	p.skipNewlines()
	for !p.is(tPunct, ")") {
		if len(f.Params) > 0 {
			p.expect(tPunct, ",")
			p.skipNewlines()
		}
		f.Params = append(f.Params, p.param())
		p.skipNewlines()
	}
	p.advance()
	p.expect(tPunct, "{")
	p.expect(tNewline, "")
	for p.skipNewlines(); !p.is(tPunct, "}"); p.skipNewlines() {
		if p.is(tEOF, "") {
			p.expect(tPunct, "}")
		}
		if p.is(tIdent, "return") {
			f.Outputs = p.outputs()
			p.skipNewlines()
			if !p.is(tPunct, "}") {
				p.fail(p.tok, "return must be the last line of a function")
			}
			break
		}
		f.Body = append(f.Body, p.instr())
		p.endLine()
	}
	p.advance()
	p.endLine()
	return f
}

// define adds a value to the function's scope.
func (p *parser) define(t token, v *Value) {
	if _, dup := p.scope[v.Name]; dup {
		p.fail(t, "%%%s is defined twice", v.Name)
	}
	p.scope[v.Name] = v
}

// use resolves a %name token.
func (p *parser) use() *Value {
	t := p.expect(tValue, "")
	v, ok := p.scope[t.text]
	if !ok {
		p.fail(t, "undefined value %%%s", t.text)
	}
	return v
}

func (p *parser) param() *Value {
	t := p.expect(tValue, "")
	p.expect(tPunct, ":")
	tt := p.expect(tType, "")
	typ, err := ParseType(tt.text)
	if err != nil {
		p.fail(tt, "%v", err)
	}
	v := &Value{Name: t.text, Type: typ}
	if p.is(tIdent, "") && p.tok.text != "init" {
		rt := p.advance()
		if v.Role, err = ParseRole(rt.text); err != nil {
			p.fail(rt, "%v", err)
		}
	}
	if p.is(tIdent, "init") {
		p.advance()
		p.expect(tPunct, "=")
		v.Init = p.expect(tString, "").text
	}
	p.define(t, v)
	return v
}

func (p *parser) outputs() []Output {
	p.advance() // return
	p.skipNewlines()
	var outs []Output
	for p.is(tValue, "") || len(outs) > 0 && p.is(tPunct, ",") {
		if len(outs) > 0 {
			p.advance()
			p.skipNewlines()
		}
		var o Output
		o.Value = p.use()
		p.expect(tIdent, "as")
		o.Name = p.expect(tString, "").text
		if p.is(tIdent, "updates") {
			p.advance()
			o.Updates = p.use()
		}
		outs = append(outs, o)
	}
	return outs
}

func (p *parser) instr() *Instr {
	in := &Instr{}
	var resToks []token
	if p.is(tValue, "") {
		for {
			resToks = append(resToks, p.expect(tValue, ""))
			if !p.is(tPunct, ",") {
				break
			}
			p.advance()
		}
		p.expect(tPunct, "=")
	}
	opTok := p.expect(tIdent, "")
	in.Op = opTok.text
	def, ok := LookupOp(in.Op)
	if !ok {
		p.fail(opTok, "unknown op %q", in.Op)
	}
	for p.is(tValue, "") || len(in.Args) > 0 && p.is(tPunct, ",") {
		if len(in.Args) > 0 {
			p.expect(tPunct, ",")
		}
		in.Args = append(in.Args, p.use())
	}
	attrTok := opTok
	if p.is(tPunct, "{") {
		attrTok = p.tok
		in.Attrs = p.attrs()
	}
	if p.is(tIdent, "loc") {
		in.Loc = p.loc()
	}
	if err := checkAttrs(def, in.Attrs); err != nil {
		p.fail(attrTok, "%v", err)
	}
	in.Attrs = NormalizeAttrs(in.Op, in.Attrs) // {factor = 2} is a float
	types := make([]Type, len(in.Args))
	for i, a := range in.Args {
		types[i] = a.Type
	}
	rts, err := InferTypes(in.Op, types, in.Attrs)
	if err != nil {
		p.fail(opTok, "%v", err)
	}
	if len(rts) != len(resToks) {
		p.fail(opTok, "%s has %d results, %d named", in.Op, len(rts), len(resToks))
	}
	for i, t := range resToks {
		if msg := typeProblem(rts[i]); msg != "" {
			p.fail(opTok, "%s: result %%%s: %s", in.Op, t.text, msg)
		}
		v := &Value{Name: t.text, Type: rts[i], Def: in}
		p.define(t, v)
		in.Results = append(in.Results, v)
	}
	return in
}

func (p *parser) attrs() Attrs {
	p.advance() // {
	var a Attrs
	for !p.is(tPunct, "}") {
		if len(a) > 0 {
			p.expect(tPunct, ",")
		}
		kt := p.expect(tIdent, "")
		p.expect(tPunct, "=")
		if a == nil {
			a = Attrs{}
		}
		if _, dup := a[kt.text]; dup {
			p.fail(kt, "attribute %q given twice", kt.text)
		}
		a[kt.text] = p.attrValue()
	}
	p.advance()
	return a
}

func (p *parser) attrValue() any {
	t := p.tok
	switch {
	case p.is(tIdent, "true"), p.is(tIdent, "false"):
		p.advance()
		return t.text == "true"
	case p.is(tIdent, "inf"):
		p.advance()
		return math.Inf(1)
	case p.is(tIdent, "nan"):
		p.advance()
		return math.NaN()
	case p.is(tString, ""):
		return p.advance().text
	case p.is(tInt, ""):
		return p.integer()
	case p.is(tFloat, ""):
		f, _ := strconv.ParseFloat(p.advance().text, 64)
		return f
	case p.is(tPunct, "["):
		p.advance()
		ints := []int{}
		for !p.is(tPunct, "]") {
			if len(ints) > 0 {
				p.expect(tPunct, ",")
			}
			ints = append(ints, p.integer())
		}
		p.advance()
		return ints
	}
	p.fail(t, "expected an attribute value, found %s", t)
	return nil
}

func (p *parser) integer() int {
	t := p.expect(tInt, "")
	n, err := strconv.Atoi(t.text)
	if err != nil {
		p.fail(t, "malformed integer %q", t.text)
	}
	return n
}

func (p *parser) loc() Loc {
	p.advance() // loc
	p.expect(tPunct, "(")
	var l Loc
	l.File = p.expect(tString, "").text
	p.expect(tPunct, ":")
	l.Line = p.integer()
	p.expect(tPunct, ":")
	l.Col = p.integer()
	p.expect(tPunct, ")")
	return l
}
