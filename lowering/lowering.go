// Package lowering is expc's pass pipeline: it rewrites the graph IR
// (canonicalize, CSE, DCE, fusion), selects one kernel per instruction,
// schedules the kernels and plans the arena.
//
// The pipeline is data (Pipeline): each Pass has a name, the one key used by
// --disable-pass, --dump-after, timings and errors; a stage; whether it is
// required; and the passes that must run before it. Run is the one driver: it
// checks the ordering constraints, runs the enabled passes, times them,
// records them in the plan, verifies after each one when asked, and turns a
// panic inside a pass into "internal error in pass X".
package lowering

import (
	"io"

	"github.com/expc-dev/expc/ir"
)

// Unit is what flows through the pipeline: the graph module, and the plan
// once kernels are selected.
type Unit struct {
	Module *ir.Module
	// Plan is pre-filled by the compiler (Name, Target, Options, Spec, Data,
	// Schedule); passes fill Buffers, Inits, Programs, Memory and Passes.
	Plan *ir.Plan
	// FusedFrom records, for instructions that fusion passes created, the
	// ops they replace. It is kept beside the module, not in ir.Attrs,
	// because attributes are checked against the op table; select-kernels
	// copies it into ir.Kernel.FusedFrom.
	FusedFrom map[*ir.Instr][]string

	seed int    // Config.Seed, for parameter initializer streams
	note string // a pass may set it; it becomes its PassRecord.Note
}

// Stage says which half of the Unit a pass rewrites.
type Stage uint8

const (
	// Graph passes rewrite Unit.Module.
	Graph Stage = iota
	// PlanStage passes rewrite Unit.Plan.
	PlanStage
)

func (s Stage) String() string {
	if s == PlanStage {
		return "plan"
	}
	return "graph"
}

// Pass is one step of the pipeline.
type Pass struct {
	Name     string   // the one key for --disable-pass, --dump-after, timings, errors
	Stage    Stage    // Graph (rewrites Unit.Module) or PlanStage (rewrites Unit.Plan)
	Required bool     // runs at -O0 and cannot be disabled
	After    []string // passes that must run before this one when both run
	Run      func(u *Unit) (changed bool, err error)
	Doc      string // one line for --help and `expc explain`
	// Target, when set, limits the pass to plans for that backend; for
	// other targets it neither runs nor appears in the pass log.
	Target string
	// Applies, when set, says whether the unit has anything for the pass
	// (a method's pass on a plan without that method); when it says no,
	// the pass neither runs nor appears in the pass log.
	Applies func(u *Unit) bool
}

// Pipeline is every pass, in order.
var Pipeline = []Pass{
	{Name: "canonicalize", Stage: Graph, Run: canonicalize,
		Doc: "canonical argument order and attributes; fold exact identities (scale by 1, neg of neg, add of neg)"},
	{Name: "cse", Stage: Graph, After: []string{"canonicalize"}, Run: cse,
		Doc: "merge pure instructions with the same op, arguments and attributes"},
	{Name: "dce", Stage: Graph, After: []string{"cse"}, Run: dce,
		Doc: "remove pure instructions whose results are unused"},
	{Name: "fuse-contrastive", Stage: Graph, After: []string{"canonicalize", "cse", "dce"}, Run: fuseContrastive, Applies: usesOp("soft_xent"),
		Doc: "a contrastive loss (normalize, similarities, temperature, masked log-sum-exp, cross-entropy) and its backward become one tiled kernel"},
	{Name: "fuse-moe-gating", Stage: Graph, After: []string{"canonicalize", "cse", "dce"}, Run: fuseMoEGating, Applies: usesOp("moe_dispatch"),
		Doc: "a mixture-of-experts layer (gate, top-k, dispatch, expert FFNs, combine) and its backward become a gating kernel, one grouped GEMM over the permuted tokens and a combine"},
	{Name: "fuse-elementwise", Stage: Graph, After: []string{"canonicalize", "cse", "dce"}, Run: fuseElementwise,
		Doc: "fuse GEMM epilogues (bias, activation, activation gradient) and softmax cross-entropy with its gradient"},
	{Name: "fuse-sparse-masks", Stage: Graph, After: []string{"fuse-elementwise"}, Run: fuseSparseMasks, Applies: hasMasks,
		Doc: "a multiply by a weight mask feeding a matmul (forward and backward) becomes a masked matmul whose kernel (N:M, block, CSR or dense-with-mask) a cost model picks"},
	{Name: "dce-late", Stage: Graph, After: []string{"fuse-elementwise"}, Run: dce,
		Doc: "dce again, after fusion"},
	{Name: "select-kernels", Stage: PlanStage, Required: true,
		After: []string{"canonicalize", "cse", "dce", "fuse-elementwise", "dce-late"}, Run: selectKernels,
		Doc: "one kernel per instruction over buffers; in-place updates; parameter initializers"},
	{Name: "schedule", Stage: PlanStage, Required: true, After: []string{"select-kernels"}, Run: schedule,
		Doc: "reorder each program's kernels to lower peak temporary memory"},
	{Name: "plan-memory", Stage: PlanStage, Required: true, After: []string{"schedule"}, Run: planMemory,
		Doc: "lay out the arena: persistent, inputs, then temporaries shared by liveness"},
	{Name: "cuda-launch", Stage: PlanStage, Required: true, After: []string{"plan-memory"}, Run: cudaLaunch, Target: "cuda",
		Doc: "record the CUDA target's kernel choices (GEMM tiles, launch shapes) in each kernel's launch attributes"},
}

// PassNames lists the pipeline's pass names in order.
func PassNames() []string {
	names := make([]string, len(Pipeline))
	for i, p := range Pipeline {
		names[i] = p.Name
	}
	return names
}

// Config says which passes run and what the driver does around them.
type Config struct {
	OptLevel  int       // 0: required passes only; 1 (the CLI default) or more: all
	Disabled  []string  // pass names; unknown names or required passes are an error naming the valid ones
	DumpAfter []string  // pass names, or "all": the printed module (graph passes) or plan (plan passes) goes to Dump
	Dump      io.Writer // where DumpAfter writes
	Verify    bool      // verify after each pass (ir.Verify / ir.VerifyPlan)
	Seed      int       // for parameter initializer streams (the spec's train.seed)
}
