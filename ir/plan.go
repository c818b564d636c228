package ir

import (
	"encoding/json"
)

// PlanFormat versions the plan file layout.
const PlanFormat = "expc.plan/v1"

// BufferKind says where a buffer lives and who fills it.
type BufferKind string

const (
	BufInput BufferKind = "input" // filled by the runner before each step
	BufParam BufferKind = "param" // persistent, initialised from Plan.Inits
	BufState BufferKind = "state" // persistent, zero-initialised
	BufTemp  BufferKind = "temp"  // per step; offsets shared by liveness
)

// Persistent reports whether the buffer survives between steps (and goes
// into checkpoints).
func (k BufferKind) Persistent() bool { return k == BufParam || k == BufState }

// Buffer is a typed region of the arena.
type Buffer struct {
	ID     int        `json:"id"`
	Name   string     `json:"name"`
	Type   Type       `json:"type"`
	Kind   BufferKind `json:"kind"`
	Offset int64      `json:"offset"` // bytes from the arena start
	Bytes  int64      `json:"bytes"`
}

// Kernel is one launch: an op over buffers.
type Kernel struct {
	Name      string   `json:"name"` // k0, k1, ... in launch order within its program
	Op        string   `json:"op"`
	FusedFrom []string `json:"fused_from,omitempty"`
	Ins       []int    `json:"ins"`
	Outs      []int    `json:"outs"`
	Attrs     Attrs    `json:"attrs,omitempty"`
	FLOPs     int64    `json:"flops"`
	Bytes     int64    `json:"bytes"` // bytes read and written
	Loc       Loc      `json:"loc,omitzero"`
	// Launch holds a target's own choices for this kernel (tile sizes,
	// block shapes) as the target's lowering recorded them. It is not
	// checked against the op table: only that target's backend reads it.
	Launch Attrs `json:"launch,omitempty"`
}

// Binding names a buffer a program reads or produces ("x", "loss").
type Binding struct {
	Name   string `json:"name"`
	Buffer int    `json:"buffer"`
}

// Program is a kernel sequence: "train" or "eval".
type Program struct {
	Name    string    `json:"name"`
	Inputs  []Binding `json:"inputs"`
	Outputs []Binding `json:"outputs"`
	Kernels []Kernel  `json:"kernels"`
}

// Init says how a parameter starts.
type Init struct {
	Buffer int     `json:"buffer"`
	Kind   string  `json:"kind"` // "he_normal" | "xavier_uniform" | "zeros"
	FanIn  int     `json:"fan_in"`
	FanOut int     `json:"fan_out"`
	Seed   uint64  `json:"seed"`  // stream of the counter-based RNG
	Scale  float64 `json:"scale"` // std (normal) or bound (uniform)
}

// Memory summarises the arena layout.
type Memory struct {
	ArenaBytes      int64 `json:"arena_bytes"`
	PersistentBytes int64 `json:"persistent_bytes"`
	InputBytes      int64 `json:"input_bytes"`
	TempBytes       int64 `json:"temp_bytes"`       // peak of the temp region
	NaiveTempBytes  int64 `json:"naive_temp_bytes"` // without liveness-based reuse
}

// PassRecord is what one pass did; timings are kept out of the plan so the
// file stays byte-identical across builds (see Timings).
type PassRecord struct {
	Name    string `json:"name"`
	Changed bool   `json:"changed"`
	Before  int    `json:"ops_before"`
	After   int    `json:"ops_after"`
	Note    string `json:"note,omitempty"`
}

// LRSchedule is the learning-rate schedule, as plan data.
type LRSchedule struct {
	Kind   string  `json:"kind"`
	LR     float64 `json:"lr"`
	MinLR  float64 `json:"min_lr"`
	Warmup int     `json:"warmup_steps"`
	Total  int     `json:"total_steps"`
}

// Schedule is the training loop's shape.
type Schedule struct {
	Steps         int        `json:"steps"`
	StepsPerEpoch int        `json:"steps_per_epoch"`
	EvalEvery     int        `json:"eval_every"`
	LogEvery      int        `json:"log_every"`
	Seed          int        `json:"seed"`
	LR            LRSchedule `json:"lr"`
	// Masks is the sparse-training mask schedule (nil without one).
	Masks *MaskSchedule `json:"masks,omitempty"`
}

// DataPlan is the data pipeline.
type DataPlan struct {
	Dataset   json.RawMessage `json:"dataset"` // the resolved schema.Dataset
	SpecDir   string          `json:"spec_dir"`
	Features  int             `json:"features"`
	Classes   int             `json:"classes"`
	TrainN    int             `json:"train_examples"`
	EvalN     int             `json:"eval_examples"`
	Batch     int             `json:"batch"`
	EvalBatch int             `json:"eval_batch"`
	Shuffle   bool            `json:"shuffle"`
}

// Options are the compiler options that change a plan (and so its hash).
type Options struct {
	OptLevel     int      `json:"opt_level"`
	DisabledPass []string `json:"disabled_passes,omitempty"`
}

// Plan is a compiled experiment: deterministic, content-addressed.
type Plan struct {
	Format   string          `json:"format"`
	Name     string          `json:"name"`
	Hash     string          `json:"hash"`
	Compiler string          `json:"compiler"`
	Target   string          `json:"target"`
	Options  Options         `json:"options"`
	Spec     json.RawMessage `json:"spec"`
	Data     DataPlan        `json:"data"`
	Schedule Schedule        `json:"schedule"`
	Buffers  []Buffer        `json:"buffers"`
	Inits    []Init          `json:"inits"`
	Programs []Program       `json:"programs"`
	Memory   Memory          `json:"memory"`
	Passes   []PassRecord    `json:"passes"`
	// Contrastive is set for contrastive training (see ContrastivePlan).
	Contrastive *ContrastivePlan `json:"contrastive,omitempty"`
}

// Program returns the program with the given name, or nil.
func (p *Plan) Program(name string) *Program {
	for i := range p.Programs {
		if p.Programs[i].Name == name {
			return &p.Programs[i]
		}
	}
	return nil
}

// Binding returns the buffer bound to name in a program's inputs or outputs, or -1.
func (pr *Program) Binding(name string) int {
	for _, b := range pr.Inputs {
		if b.Name == name {
			return b.Buffer
		}
	}
	for _, b := range pr.Outputs {
		if b.Name == name {
			return b.Buffer
		}
	}
	return -1
}

// ShortHash is the 12-hex-digit prefix used in file names.
func (p *Plan) ShortHash() string {
	if len(p.Hash) < 12 {
		return p.Hash
	}
	return p.Hash[:12]
}

// Timings are per-pass wall times of one build, stored next to the plan.
type Timings struct {
	Hash   string       `json:"hash"`
	Passes []PassTiming `json:"passes"`
	Total  float64      `json:"total_seconds"`
}

// PassTiming is one pass's wall time.
type PassTiming struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}
