package schema

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/parser"

	"github.com/expc-dev/expc/diag"
)

// Source is the embedded CUE schema; #Experiment is the definition every
// spec is unified with.
//
//go:embed schema.cue
var Source []byte

// schemaFile names the embedded schema in CUE positions; positions in it are
// never shown to the user.
const schemaFile = "expc:schema.cue"

// Diagnostic codes produced by this package.
const (
	CodeNotFound   = "E-SPEC-NOT-FOUND"   // the spec path does not exist
	CodeRead       = "E-SPEC-READ"        // the spec exists but cannot be read
	CodeFormat     = "E-SPEC-FORMAT"      // not .cue, .hcl or a directory
	CodeEmpty      = "E-SPEC-EMPTY"       // the file holds nothing but white space
	CodeBinary     = "E-SPEC-BINARY"      // NUL bytes or invalid UTF-8
	CodeSyntax     = "E-SPEC-SYNTAX"      // CUE or HCL syntax error
	CodeLoad       = "E-SPEC-LOAD"        // package/import resolution failed
	CodeUnknownKey = "E-SPEC-UNKNOWN-KEY" // a field the schema does not have
	CodeType       = "E-SPEC-TYPE"        // a value of the wrong type
	CodeRange      = "E-SPEC-RANGE"       // a value out of its bounds
	CodeEnum       = "E-SPEC-ENUM"        // a value that is not one of the allowed ones
	CodeMissing    = "E-SPEC-MISSING"     // a required field is not given
	CodeInvalid    = "E-SPEC-INVALID"     // any other schema violation
	CodeInternal   = "E-SPEC-INTERNAL"    // a bug in expc, not in the spec
)

// Load reads the spec at path: a .cue file, a .hcl file, or a directory
// holding one CUE package. A .cue file or directory may import packages of
// the cue.mod module it sits in (a GitOps repository sharing base specs).
// The result has every default filled in and its Source map set; on failure
// the List holds at least one Error, each with a position.
func Load(path string) (*Experiment, diag.List) {
	name := filepath.Clean(path)
	fi, err := os.Stat(name)
	if err != nil {
		return nil, readError(name, err)
	}
	if fi.IsDir() {
		return loadPackage(name, nil)
	}
	switch filepath.Ext(name) {
	case ".cue", ".hcl":
	default:
		return nil, diag.List{diag.Errorf(diag.File(name), "", CodeFormat,
			"unsupported spec format %q: want a .cue or .hcl file, or a directory holding a CUE package", filepath.Ext(name))}
	}
	src, err := os.ReadFile(name)
	if err != nil {
		return nil, readError(name, err)
	}
	if filepath.Ext(name) == ".cue" && hasImports(name, src) {
		if l := checkText(name, src); l != nil {
			return nil, l
		}
		return loadPackage(filepath.Dir(name), []string{filepath.Base(name)})
	}
	return LoadBytes(name, src)
}

// LoadBytes is Load for a spec already in memory; filename picks the syntax
// (.hcl is HCL, anything else CUE) and names the file in diagnostics.
// Imports other than the CUE standard library are not available here.
func LoadBytes(filename string, src []byte) (*Experiment, diag.List) {
	if l := checkText(filename, src); l != nil {
		return nil, l
	}
	files := map[string][]byte{filename: src}
	ctx := cuecontext.New()
	if filepath.Ext(filename) == ".hcl" {
		f, pos, l := hclToCUE(filename, src)
		if l != nil {
			return nil, l
		}
		return finish(ctx, ctx.BuildFile(f), files, filename, identity, pos)
	}
	f, err := parser.ParseFile(filename, src)
	if err != nil {
		return nil, plainErrors(err, CodeSyntax, files, identity)
	}
	return finish(ctx, ctx.BuildFile(f), files, filename, identity, nil)
}

// loadPackage loads the CUE package in dir (args nil) or the named files in
// dir with cue/load, so that imports resolve inside the enclosing cue.mod
// module.
func loadPackage(dir string, args []string) (*Experiment, diag.List) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, readError(dir, err)
	}
	display := displayNamer(dir)
	if args == nil {
		args = []string{"."}
	}
	insts := load.Instances(args, &load.Config{Dir: abs})
	if len(insts) != 1 {
		return nil, diag.List{diag.Errorf(diag.File(dir), "", CodeLoad, "expected one CUE package in %s, found %d", dir, len(insts))}
	}
	inst := insts[0]
	files := map[string][]byte{}
	var main string
	var l diag.List
	for _, fn := range instanceFiles(inst, map[*build.Instance]bool{}) {
		src, err := os.ReadFile(fn)
		if err != nil {
			continue
		}
		name := display(fn)
		if main == "" {
			main = name
		}
		files[name] = src
		if c := checkText(name, src); c != nil {
			l = append(l, c...)
			continue
		}
		if _, err := parser.ParseFile(name, src); err != nil {
			l = append(l, plainErrors(err, CodeSyntax, files, identity)...)
		}
	}
	if l != nil {
		return nil, l
	}
	if inst.Err != nil {
		return nil, plainErrors(inst.Err, CodeLoad, files, display)
	}
	if main == "" {
		main = dir
	}
	ctx := cuecontext.New()
	return finish(ctx, ctx.BuildInstance(inst), files, main, display, nil)
}

// instanceFiles lists the .cue files of inst and of the instances it imports
// (the standard library has none), the root instance's files first.
func instanceFiles(inst *build.Instance, seen map[*build.Instance]bool) []string {
	if inst == nil || seen[inst] {
		return nil
	}
	seen[inst] = true
	var out []string
	for _, f := range inst.BuildFiles {
		if strings.HasSuffix(f.Filename, ".cue") {
			out = append(out, f.Filename)
		}
	}
	for _, f := range inst.InvalidFiles {
		if strings.HasSuffix(f.Filename, ".cue") {
			out = append(out, f.Filename)
		}
	}
	for _, imp := range inst.Imports {
		out = append(out, instanceFiles(imp, seen)...)
	}
	return out
}

// displayNamer maps the absolute file names cue/load reports back to names
// relative to the working directory when the user gave a relative path.
func displayNamer(given string) func(string) string {
	if filepath.IsAbs(given) {
		return identity
	}
	wd, err := os.Getwd()
	if err != nil {
		return identity
	}
	return func(fn string) string {
		if !filepath.IsAbs(fn) {
			return fn
		}
		rel, err := filepath.Rel(wd, fn)
		if err != nil || strings.HasPrefix(rel, "..") {
			return fn
		}
		return rel
	}
}

func identity(s string) string { return s }

// finish unifies the user's value with the schema, validates, decodes and
// fills the source map. pos is nil when the positions are to be read off the
// user's CUE value (HCL brings its own, taken from the HCL syntax tree).
func finish(ctx *cue.Context, user cue.Value, files map[string][]byte, main string, display func(string) string, pos *positions) (*Experiment, diag.List) {
	schemaVal := ctx.CompileBytes(Source, cue.Filename(schemaFile))
	if err := schemaVal.Err(); err != nil {
		return nil, diag.List{diag.Errorf(diag.Range{}, "", CodeInternal, "embedded schema does not compile: %v", err)}
	}
	def := schemaVal.LookupPath(cue.MakePath(cue.Def("#Experiment")))
	if pos == nil {
		pos = walkSource(user, files, display)
	}
	root := diag.Range{File: main, Start: diag.Pos{Line: 1, Col: 1}, End: diag.Pos{Line: 1, Col: 1}}
	pos.values[""] = root
	sm := &SourceMap{Files: files, Fields: pos.values}
	c := &checker{def: def, user: user, sm: sm, pos: pos, display: display}

	if err := user.Err(); err != nil {
		return nil, c.errors(err)
	}
	v := def.Unify(user)
	if err := v.Validate(cue.Concrete(true), cue.Final()); err != nil {
		return nil, c.errors(err)
	}
	var e Experiment
	if err := v.Decode(&e); err != nil {
		return nil, diag.List{diag.Errorf(root, "", CodeInternal, "decoding the validated spec: %v", err)}
	}
	e.Source = sm
	return &e, nil
}

// hasImports reports whether a CUE file imports anything; a file that does
// not parse is loaded as bytes, which reports the syntax error.
func hasImports(name string, src []byte) bool {
	f, err := parser.ParseFile(name, src, parser.ImportsOnly)
	if err != nil {
		return false
	}
	for _, d := range f.Decls {
		if _, ok := d.(*ast.ImportDecl); ok {
			return true
		}
	}
	return false
}

// checkText rejects a file that is empty or is not UTF-8 text.
func checkText(name string, src []byte) diag.List {
	if len(bytes.TrimSpace(src)) == 0 {
		return diag.List{diag.Errorf(diag.File(name), "", CodeEmpty, "spec is empty")}
	}
	bad := bytes.IndexByte(src, 0)
	if bad < 0 && !utf8.Valid(src) {
		for i := 0; i < len(src); {
			r, n := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && n <= 1 {
				bad = i
				break
			}
			i += n
		}
	}
	if bad >= 0 {
		p := posAt(src, bad)
		r := diag.Range{File: name, Start: p, End: p}
		d := diag.Errorf(r, "", CodeBinary, "not a text file (byte 0x%02x at offset %d)", src[bad], bad)
		d.Detail = "a spec is UTF-8 text in CUE or HCL syntax"
		return diag.List{d}
	}
	return nil
}

// posAt is the line, column and offset of byte offset off in src.
func posAt(src []byte, off int) diag.Pos {
	off = min(max(off, 0), len(src))
	line := 1 + bytes.Count(src[:off], []byte("\n"))
	col := off - (bytes.LastIndexByte(src[:off], '\n') + 1) + 1
	return diag.Pos{Line: line, Col: col, Offset: off}
}

func readError(name string, err error) diag.List {
	if errors.Is(err, fs.ErrNotExist) {
		return diag.List{diag.Errorf(diag.File(name), "", CodeNotFound, "spec not found: no such file or directory")}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return diag.List{diag.Errorf(diag.File(name), "", CodeRead, "cannot read spec: %v", err)}
}

// Canonical is the deterministic JSON of the resolved spec (every default
// filled in, source positions left out): the spec's part of a plan hash.
func (e *Experiment) Canonical() ([]byte, error) {
	return json.Marshal(e)
}
