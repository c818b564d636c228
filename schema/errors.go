package schema

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/expc-dev/expc/diag"
)

// checker turns CUE's errors into diagnostics a user can act on: one per
// field, reworded, pointing into the user's file, with did-you-mean hints
// computed from the schema.
type checker struct {
	def     cue.Value // the schema's #Experiment
	user    cue.Value // the user's spec, before unification
	sm      *SourceMap
	pos     *positions
	display func(string) string
}

// cueErr is one CUE error, reduced to what the rewording needs.
type cueErr struct {
	format string
	args   []any
	pos    []token.Pos
}

// discriminators are the fields that select a variant of a union struct
// (dataset.name, model.kind, optimizer.kind, ...) when the schema gives them
// a closed set of strings.
var discriminators = []string{"kind", "name"}

// errors converts the errors of the unified spec. Should the rewording trip
// over an unexpected shape of CUE error, the errors are reported as CUE
// words them rather than as a panic.
func (c *checker) errors(err error) (out diag.List) {
	defer func() {
		if r := recover(); r != nil {
			out = plainErrors(err, CodeInvalid, c.sm.Files, c.display)
		}
	}()
	var order []string
	groups := map[string][]cueErr{}
	elems := map[string][]string{}
	for _, e := range errors.Errors(err) {
		p := e.Path()
		if len(p) > 0 && p[0] == "#Experiment" {
			p = p[1:]
		}
		key := formatPath(p)
		format, args := e.Msg()
		if strings.HasSuffix(format, "errors in empty disjunction:") {
			continue // a header; the disjuncts' errors follow
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
			elems[key] = p
		}
		ps := append([]token.Pos{e.Position()}, e.InputPositions()...)
		groups[key] = append(groups[key], cueErr{format, args, ps})
	}

	incomplete := map[int]bool{}
	for _, key := range order {
		for _, d := range c.diagnose(elems[key], groups[key]) {
			if d.Code == "incomplete" {
				d.Code = CodeMissing
				incomplete[len(out)] = true
			}
			out = append(out, d)
		}
	}
	// A field left incomplete is most often the echo of another error (an
	// invalid kind leaves its defaults undecided): report it only alone.
	if len(incomplete) < len(out) {
		kept := out[:0]
		for i, d := range out {
			if !incomplete[i] {
				kept = append(kept, d)
			}
		}
		out = kept
	}
	if len(out) == 0 { // never report success for a failed validation
		return plainErrors(err, CodeInvalid, c.sm.Files, c.display)
	}
	out = dedupe(out)
	out.Sort()
	return out
}

// diagnose words the errors reported at one path.
func (c *checker) diagnose(elems []string, errs []cueErr) diag.List {
	path := formatPath(elems)
	var bound, conflict, listLen, other, incomplete *cueErr
	for i := range errs {
		e := &errs[i]
		switch {
		case e.format == "field not allowed" && len(elems) > 0:
			return c.unknownField(elems, e)
		case e.format == "field is required but not present":
			return diag.List{c.missing(elems)}
		case e.format == "required field missing: %s" && len(e.args) == 1:
			return diag.List{c.missing(append(slices.Clone(elems), fmt.Sprint(e.args[0])))}
		case strings.HasPrefix(e.format, "invalid value %v (out of bound %s)"):
			bound = first(bound, e)
		case strings.HasPrefix(e.format, "conflicting values"):
			conflict = first(conflict, e)
		case strings.HasPrefix(e.format, "incompatible list lengths"):
			listLen = first(listLen, e)
		case strings.Contains(e.format, "incomplete") || strings.Contains(e.format, "non-concrete"):
			incomplete = first(incomplete, e)
		default:
			other = first(other, e)
		}
	}
	r := c.rangeFor(path, errs)

	if u := c.userAt(elems); u.Exists() && u.IsConcrete() && u.Err() == nil {
		s, _ := c.schemaAt(elems, true)
		if enum := enumValues(s); enum != nil && u.Kind() == cue.StringKind {
			got, _ := u.String()
			if !slices.Contains(enum, got) {
				d := diag.Errorf(r, path, CodeEnum, "%s must be %s; got %q", path, oneOf(enum), got)
				if sug := suggest(got, enum); sug != "" {
					d.Summary += fmt.Sprintf("; did you mean %q?", sug)
				}
				return diag.List{d}
			}
		}
		if want := s.IncompleteKind(); s.Exists() && want != cue.BottomKind && want&u.Kind() == 0 {
			return diag.List{diag.Errorf(r, path, CodeType, "%s: expected %s, got %s", subject(path), want, describe(u))}
		}
	}
	switch {
	case bound != nil && len(bound.args) == 2:
		return diag.List{diag.Errorf(r, path, CodeRange, "%s %s, got %v", subject(path), boundPhrase(fmt.Sprint(bound.args[1])), bound.args[0])}
	case listLen != nil:
		if u := c.userAt(elems); u.Exists() {
			if n, err := u.Len().Int64(); err == nil && n == 0 {
				return diag.List{diag.Errorf(r, path, CodeRange, "%s must not be empty", path)}
			}
		}
		return diag.List{diag.Errorf(r, path, CodeRange, "%s: %s", subject(path), message(listLen))}
	case conflict != nil:
		return diag.List{diag.Errorf(r, path, CodeInvalid, "%s: %s", subject(path), message(conflict))}
	case other != nil:
		return diag.List{diag.Errorf(r, path, CodeInvalid, "%s", prefixed(path, message(other)))}
	case incomplete != nil:
		if _, written := c.pos.values[path]; written {
			d := diag.Errorf(r, path, CodeInvalid, "%s has no concrete value (%s)", path, strings.TrimPrefix(message(incomplete), "incomplete value "))
			d.Detail = "write a value; when the spec's default and the schema's differ, CUE keeps neither"
			return diag.List{d}
		}
		d := c.missing(elems)
		d.Code = "incomplete"
		return diag.List{d}
	}
	return nil
}

// unknownField reports a key the schema does not have at its level.
func (c *checker) unknownField(elems []string, e *cueErr) diag.List {
	path := formatPath(elems)
	parent, key := elems[:len(elems)-1], elems[len(elems)-1]
	if u, err := strconv.Unquote(key); err == nil {
		key = u
	}
	r, ok := c.pos.fields[path]
	if !ok {
		r = c.rangeFor(path, []cueErr{*e})
	}
	s, _ := c.schemaAt(parent, false)
	allowed := fieldNames(c.fillDiscriminators(s, parent))

	var detail []string
	if disc, alts, ok := c.otherVariants(s, parent, key); ok {
		name := joinPath(formatPath(parent), disc)
		got, err := c.userAt(append(slices.Clone(parent), disc)).String()
		if def, ok := lookupField(s, disc).Default(); err != nil && ok {
			got, err = def.String() // the variant chosen by default
		}
		if err != nil || !slices.Contains(enumValues(lookupField(s, disc)), got) {
			// The variant is not (validly) chosen: that is the error to report;
			// the enum error, if any, is reported at the discriminator.
			if err != nil {
				return diag.List{c.missing(append(slices.Clone(parent), disc))}
			}
			return nil
		}
		detail = append(detail, fmt.Sprintf("%q is only allowed when %s is %s", key, name, orList(alts)))
	}
	where := ""
	if len(parent) > 0 {
		where = " in " + formatPath(parent)
	}
	d := diag.Errorf(r, path, CodeUnknownKey, "unknown field %q%s", key, where)
	if sug := suggest(key, allowed); sug != "" {
		d.Summary += fmt.Sprintf("; did you mean %q?", sug)
	}
	if len(allowed) > 0 {
		detail = append(detail, "allowed fields"+where+": "+strings.Join(allowed, ", "))
	}
	d.Detail = strings.Join(detail, "\n")
	return diag.List{d}
}

// otherVariants reports whether key belongs to variants of the union struct
// s other than the one the user chose, and which discriminator values those are.
func (c *checker) otherVariants(s cue.Value, parent []string, key string) (disc string, alts []string, ok bool) {
	for _, d := range discriminators {
		enum := enumValues(lookupField(s, d))
		if enum == nil {
			continue
		}
		for _, alt := range enum {
			if slices.Contains(fieldNames(s.FillPath(cue.MakePath(cue.Str(d)), alt)), key) {
				alts = append(alts, alt)
			}
		}
		if alts != nil {
			return d, alts, true
		}
	}
	return "", nil, false
}

// missing reports a required field that is not given, pointing at the
// nearest enclosing struct the user wrote.
func (c *checker) missing(elems []string) diag.Diagnostic {
	path := formatPath(elems)
	d := diag.Errorf(c.sm.Pos(path), path, CodeMissing, "missing required field %s", path)
	if s, ok := c.schemaAt(elems, false); ok {
		if enum := enumValues(s); enum != nil {
			d.Detail = "it must be " + oneOf(enum)
		}
	}
	return d
}

// rangeFor picks where an error at path is shown: the value the user wrote
// there, else the first position CUE gives in a user file, else the nearest
// enclosing field the user wrote.
func (c *checker) rangeFor(path string, errs []cueErr) diag.Range {
	if r, ok := c.pos.values[path]; ok {
		return r
	}
	for _, e := range errs {
		for _, p := range e.pos {
			if r, ok := nodeRange(p, p, c.sm.Files, c.display); ok {
				for _, known := range c.pos.values {
					if known.File == r.File && known.Start == r.Start {
						return known
					}
				}
				return r
			}
		}
	}
	return c.sm.Pos(path)
}

// userAt is the user's value at a path (not unified with the schema).
func (c *checker) userAt(elems []string) cue.Value {
	v := c.user
	for _, e := range elems {
		if isIndex(e) {
			n, _ := strconv.Atoi(e)
			v = v.LookupPath(cue.MakePath(cue.Index(n)))
		} else {
			v = v.LookupPath(cue.MakePath(cue.Str(unquote(e))))
		}
	}
	return v
}

// schemaAt is the schema for the field at a path, with the user's choice of
// variant (kind, name) filled in on every enclosing struct, and on the field
// itself when fillLast is set.
func (c *checker) schemaAt(elems []string, fillLast bool) (cue.Value, bool) {
	s := c.def
	for i, e := range elems {
		s = c.fillDiscriminators(s, elems[:i])
		if isIndex(e) {
			s = s.LookupPath(cue.MakePath(cue.AnyIndex))
		} else {
			s = lookupField(s, unquote(e))
		}
		if !s.Exists() {
			return s, false
		}
	}
	if fillLast {
		s = c.fillDiscriminators(s, elems)
	}
	return s, true
}

// fillDiscriminators sets the schema struct s's discriminators to the
// values the user gave at path, when they are valid.
func (c *checker) fillDiscriminators(s cue.Value, elems []string) cue.Value {
	if !s.Exists() {
		return s
	}
	u := c.userAt(elems)
	for _, d := range discriminators {
		enum := enumValues(lookupField(s, d))
		got, err := u.LookupPath(cue.MakePath(cue.Str(d))).String()
		if enum != nil && err == nil && slices.Contains(enum, got) {
			s = s.FillPath(cue.MakePath(cue.Str(d)), got)
		}
	}
	return s
}

// lookupField finds a field of s whether it is regular, optional or required.
func lookupField(s cue.Value, name string) cue.Value {
	for _, sel := range []cue.Selector{cue.Str(name), cue.Str(name).Optional(), cue.Str(name).Required()} {
		if v := s.LookupPath(cue.MakePath(sel)); v.Exists() {
			return v
		}
	}
	return cue.Value{}
}

// fieldNames lists the fields a schema struct allows, sorted.
func fieldNames(s cue.Value) []string {
	it, err := s.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	var names []string
	for it.Next() {
		if sel := it.Selector(); !sel.IsDefinition() && sel.PkgPath() == "" {
			names = append(names, sel.Unquoted())
		}
	}
	sort.Strings(names)
	return names
}

// enumValues returns the closed set of strings a schema field allows, or nil
// when it allows more than a list of strings.
func enumValues(v cue.Value) []string {
	if !v.Exists() {
		return nil
	}
	op, args := v.Expr()
	if op != cue.OrOp {
		op, args = v.Eval().Expr()
	}
	if op != cue.OrOp && op != cue.NoOp {
		return nil
	}
	var out []string
	for _, a := range args {
		if a.Kind() != cue.StringKind {
			return nil
		}
		s, err := a.String()
		if err != nil {
			return nil
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// describe is a user's value for a message: its type, and the value itself
// when it is short.
func describe(u cue.Value) string {
	switch k := u.Kind(); k {
	case cue.StructKind, cue.ListKind:
		return k.String()
	default:
		return fmt.Sprintf("%s %v", k, u)
	}
}

// boundPhrase rewords a CUE bound: ">0" -> "must be > 0",
// `=~"^[a-z]+$"` -> "must match ^[a-z]+$".
func boundPhrase(b string) string {
	for _, op := range []string{">=", "<=", "!=", "=~", "!~", ">", "<"} {
		rest, ok := strings.CutPrefix(b, op)
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		switch op {
		case "=~":
			return "must match " + unquote(rest)
		case "!~":
			return "must not match " + unquote(rest)
		}
		return "must be " + op + " " + rest
	}
	return "must satisfy " + b
}

// message formats a CUE error's message without its position.
func message(e *cueErr) string {
	return fmt.Sprintf(e.format, e.args...)
}

// plainErrors reports CUE errors that need no rewording (syntax, loading) at
// their first position in a user file.
func plainErrors(err error, code string, files map[string][]byte, display func(string) string) diag.List {
	var out diag.List
	for _, e := range errors.Errors(err) {
		format, args := e.Msg()
		var r diag.Range
		for _, p := range append([]token.Pos{e.Position()}, e.InputPositions()...) {
			if p.IsValid() {
				r = diag.Range{File: display(p.Filename()), Start: toPos(p)}
				r.End = r.Start
				break
			}
		}
		msg := fmt.Sprintf(format, args...)
		// Wrapped causes (why an import failed) carry the useful part.
		for u := errors.Unwrap(e); u != nil; u = errors.Unwrap(u) {
			if ce, ok := u.(errors.Error); ok {
				f, a := ce.Msg()
				msg += ": " + fmt.Sprintf(f, a...)
			} else {
				msg += ": " + u.Error()
			}
		}
		out = append(out, diag.Errorf(r, formatPath(e.Path()), code, "%s", msg))
	}
	if len(out) == 0 {
		out = diag.List{diag.Errorf(diag.Range{}, "", code, "%v", err)}
	}
	out = dedupe(out)
	out.Sort()
	return out
}

func dedupe(l diag.List) diag.List {
	seen := map[string]bool{}
	out := l[:0]
	for _, d := range l {
		k := d.Code + "\x00" + d.Path + "\x00" + d.Summary
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}

func first(a, b *cueErr) *cueErr {
	if a != nil {
		return a
	}
	return b
}

// subject names a path in a message; the root is "the spec".
func subject(path string) string {
	if path == "" {
		return "the spec"
	}
	return path
}

func prefixed(path, msg string) string {
	if path == "" {
		return msg
	}
	return path + ": " + msg
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

// oneOf is `"a"` for one value, `one of "a", "b"` for more.
func oneOf(enum []string) string {
	if len(enum) == 1 {
		return strconv.Quote(enum[0])
	}
	return "one of " + quoteList(enum)
}

func orList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
