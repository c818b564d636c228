// Package pipeline is the one path from a spec file to a plan file: load and
// validate the spec, read the data's shapes, compile, lower, check memory,
// hash, and write the plan atomically. The CLI and the tests both use it.
package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"sort"

	"github.com/expc-dev/expc/compiler"
	"github.com/expc-dev/expc/data"
	"github.com/expc-dev/expc/diag"
	"github.com/expc-dev/expc/ir"
	"github.com/expc-dev/expc/lowering"
	"github.com/expc-dev/expc/schema"
)

// Options are the build options; every field but Dump changes the plan hash
// or the checks, never silently.
type Options struct {
	Backend   string   // overrides the spec's backend when set
	OptLevel  int      // 0: required passes only; 1: all passes
	Disabled  []string // passes to skip
	DumpAfter []string // passes whose output to print to Dump
	Dump      io.Writer
	// MemoryLimit refuses plans that need more bytes (0: the machine's available memory).
	MemoryLimit int64
}

// Result is a built plan and what produced it.
type Result struct {
	Exp      *schema.Experiment
	Module   *ir.Module // the lowered graph module
	Plan     *ir.Plan
	PlanJSON []byte // the exact bytes of the plan file
	Timings  *ir.Timings
}

// Build compiles the spec at path. Every user error is a positioned diagnostic.
func Build(path string, opts Options) (*Result, diag.List) {
	exp, diags := schema.Load(path)
	if diags.HasErrors() {
		return nil, diags
	}
	return BuildExperiment(exp, specDir(path), opts)
}

func specDir(path string) string {
	if filepath.Ext(path) == "" { // a CUE package directory
		return path
	}
	return filepath.Dir(path)
}

// BuildExperiment compiles an already loaded spec.
func BuildExperiment(exp *schema.Experiment, dir string, opts Options) (res *Result, diags diag.List) {
	defer func() {
		if r := recover(); r != nil {
			res, diags = nil, diag.List{{Severity: diag.Error, Code: "E-INTERNAL",
				Summary: fmt.Sprintf("internal compiler error: %v", r),
				Detail:  "please report this with the spec that caused it\n" + string(debug.Stack()),
				Range:   exp.Source.Pos("")}}
		}
	}()
	target := exp.Backend
	if opts.Backend != "" {
		target = opts.Backend
	}
	meta, err := data.Meta(exp.Dataset, dir)
	if err != nil {
		return nil, diag.List{diag.Errorf(exp.Source.Pos("dataset"), "dataset", "E-DATA", "%v", err)}
	}
	irOpts := ir.Options{OptLevel: opts.OptLevel, DisabledPass: sortedCopy(opts.Disabled)}
	cin := compiler.Input{
		Exp: exp, SpecDir: dir, Target: target, Options: irOpts,
		Data: compiler.DataShape{Features: meta.Features, Classes: meta.Classes, TrainN: meta.TrainN, EvalN: meta.EvalN},
	}
	mod, plan, diags := compiler.Compile(cin)
	if diags.HasErrors() {
		return nil, diags
	}
	unit := &lowering.Unit{Module: mod, Plan: plan}
	lcfg := lowering.Config{
		OptLevel: opts.OptLevel, Disabled: opts.Disabled, DumpAfter: opts.DumpAfter,
		Dump: opts.Dump, Verify: true, Seed: exp.Train.Seed,
	}
	timings, err := lowering.Run(unit, lcfg)
	if err != nil {
		return nil, diag.List{diag.Errorf(exp.Source.Pos(""), "", "E-LOWER", "%v", err)}
	}
	recordUnfusedArena(cin, lcfg, plan)
	limit := opts.MemoryLimit
	if limit == 0 {
		limit = AvailableMemory()
	}
	if d := compiler.CheckMemory(plan, exp.Source, limit); d.HasErrors() {
		return nil, d
	}
	plan.Hash, err = Hash(exp, irOpts, target)
	if err != nil {
		return nil, diag.List{diag.Errorf(exp.Source.Pos(""), "", "E-INTERNAL", "hashing the plan: %v", err)}
	}
	timings.Hash = plan.Hash
	js, err := EncodePlan(plan)
	if err != nil {
		return nil, diag.List{diag.Errorf(exp.Source.Pos(""), "", "E-INTERNAL", "encoding the plan: %v", err)}
	}
	return &Result{Exp: exp, Module: unit.Module, Plan: plan, PlanJSON: js, Timings: timings}, nil
}

// Hash is sha256 over the canonical encoding of the resolved spec, the
// compiler version, the options and the target.
func Hash(exp *schema.Experiment, opts ir.Options, target string) (string, error) {
	canon, err := json.Marshal(struct {
		Spec     *schema.Experiment `json:"spec"`
		Compiler string             `json:"compiler"`
		Options  ir.Options         `json:"options"`
		Target   string             `json:"target"`
	}{exp, compiler.Version, opts, target})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

// EncodePlan is the plan file's canonical form: indented JSON, newline-terminated.
func EncodePlan(p *ir.Plan) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sortedCopy(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
