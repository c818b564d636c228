// Package schema loads experiment specs (CUE or HCL), unifies them with the
// embedded CUE schema and decodes them into the plain Go structs below. No
// cue.Value leaves this package.
package schema

import "github.com/expc-dev/expc/diag"

// Experiment is a fully resolved spec: every default filled in, every
// constraint known before running checked.
type Experiment struct {
	Name      string    `json:"name"`
	Dataset   Dataset   `json:"dataset"`
	Model     Model     `json:"model"`
	Loss      Loss      `json:"loss"`
	Optimizer Optimizer `json:"optimizer"`
	Train     Train     `json:"train"`
	Backend   string    `json:"backend"` // "cpu" (default) | "cuda"
	Method    *Method   `json:"method,omitempty"`

	// Source maps spec field paths to where they were written. Not part of
	// the plan hash (positions change when a comment is added).
	Source *SourceMap `json:"-"`
}

// Dataset selects the data. Name is the discriminator.
type Dataset struct {
	Name string `json:"name"` // "fashion-mnist" | "idx" | "csv" | "blobs" | "moons"
	// Batch is the training batch size (> 0, default 128).
	Batch int `json:"batch"`
	// Views makes two views of each example (contrastive losses only).
	Views *Views `json:"views,omitempty"`
	// EvalBatch is the evaluation batch size (default: Batch).
	EvalBatch int `json:"eval_batch"`
	// Shuffle reshuffles the training set every epoch (default true).
	Shuffle bool `json:"shuffle"`
	// Normalize scales features (images: to [0,1] then standardised with the
	// training set's mean and std; csv: per-feature standardisation). Default true.
	Normalize bool `json:"normalize"`
	// EvalFraction carves an evaluation split off the training data when the
	// dataset has no test set of its own (csv without test, blobs, moons). 0 <= f < 1, default 0.2.
	EvalFraction float64 `json:"eval_fraction"`

	// fashion-mnist: Dir holds the four IDX files (.gz or plain);
	// default "/usr/share/datasets/fashion-mnist".
	Dir string `json:"dir,omitempty"`
	// idx: explicit file paths (relative paths are relative to the spec file).
	TrainImages string `json:"train_images,omitempty"`
	TrainLabels string `json:"train_labels,omitempty"`
	TestImages  string `json:"test_images,omitempty"`
	TestLabels  string `json:"test_labels,omitempty"`
	// csv: one row per example, numeric features and one integer label column.
	Train       string `json:"train,omitempty"`
	Test        string `json:"test,omitempty"`
	LabelColumn string `json:"label_column,omitempty"` // header name; default "label"
	Header      bool   `json:"header"`                 // first row is a header (default true)
	// csv, when known up front: feature count and classes let the compiler
	// know shapes without reading the file. 0 means "read the header/scan".
	Features int `json:"features,omitempty"`
	Classes  int `json:"classes,omitempty"`
	// blobs, moons: seeded synthetic generators.
	Samples int     `json:"samples,omitempty"` // total examples (default 2000)
	Centers int     `json:"centers,omitempty"` // blobs: classes (default 3)
	Dim     int     `json:"dim,omitempty"`     // blobs: features (default 2)
	Noise   float64 `json:"noise,omitempty"`   // blobs: cluster std (default 1.0); moons: noise std (default 0.1)
	Seed    int     `json:"seed,omitempty"`    // generator seed (default 0)
	// tokens: sequences of SeqLen+1 token ids over Vocab from Sources;
	// mixture_regression: Experts true experts (see data/tokens.go, data/mixture.go).
	SeqLen  int      `json:"seq_len,omitempty"`
	Vocab   int      `json:"vocab,omitempty"`
	Sources []string `json:"sources,omitempty"`
	Experts int      `json:"experts,omitempty"`
}

// Model is a sum type over Kind; the fields of the other kinds are zero.
type Model struct {
	Kind string `json:"kind"` // "mlp"
	// mlp
	Hidden     []int  `json:"hidden,omitempty"`     // hidden layer widths, each > 0
	Activation string `json:"activation,omitempty"` // "relu" (default) | "gelu" | "tanh" | "sigmoid"
	Init       string `json:"init,omitempty"`       // "he" (default) | "xavier"
	// Projection head widths for contrastive losses (default [128] there).
	Projection []int `json:"projection,omitempty"`
	// MoE: mixture-of-experts layers (mlp, transformer) or the gate of the
	// gaussian_moe head (see schema/moe.go).
	MoE *MoE `json:"moe,omitempty"`
	// transformer
	DModel int  `json:"d_model,omitempty"`
	Layers int  `json:"layers,omitempty"`
	Heads  int  `json:"heads,omitempty"`
	FFN    int  `json:"ffn,omitempty"`
	Causal bool `json:"causal,omitempty"`
}

// Loss is the training objective.
type Loss struct {
	Kind           string  `json:"kind"`            // "cross_entropy"
	LabelSmoothing float64 `json:"label_smoothing"` // 0 <= s < 1, default 0
	ZLoss          float64 `json:"z_loss"`          // weight of mean(logsumexp^2), >= 0, default 0
	// kind "contrastive" (see schema/contrastive.go)
	Objective   string       `json:"objective,omitempty"` // "nt_xent" | "decoupled" | "supcon" | "dual_infonce"
	Temperature *Temperature `json:"temperature,omitempty"`
	Towers      string       `json:"towers,omitempty"` // dual_infonce: "shared" | "separate"
	Symmetric   bool         `json:"symmetric,omitempty"`
	Negatives   *Negatives   `json:"negatives,omitempty"`
	Probe       *Probe       `json:"probe,omitempty"`
}

// Optimizer updates the parameters.
type Optimizer struct {
	Kind        string   `json:"kind"`         // "sgd" | "adamw" (default "sgd")
	LR          float64  `json:"lr"`           // > 0; default 0.05 for sgd, 0.001 for adamw
	Momentum    float64  `json:"momentum"`     // sgd: 0 <= m < 1, default 0.9
	Nesterov    bool     `json:"nesterov"`     // sgd, default false
	WeightDecay float64  `json:"weight_decay"` // >= 0; default 0 for sgd, 0.01 for adamw
	Beta1       float64  `json:"beta1"`        // adamw: 0 <= b < 1, default 0.9
	Beta2       float64  `json:"beta2"`        // adamw: 0 <= b < 1, default 0.999
	Eps         float64  `json:"eps"`          // adamw: > 0, default 1e-8
	Schedule    Schedule `json:"schedule"`
}

// Schedule is the learning-rate schedule.
type Schedule struct {
	Kind        string  `json:"kind"`         // "constant" (default) | "cosine" (linear warmup, then cosine decay)
	WarmupSteps int     `json:"warmup_steps"` // >= 0, default 0
	MinLR       float64 `json:"min_lr"`       // cosine floor, >= 0, default 0
}

// Train is the training loop.
type Train struct {
	Epochs    int `json:"epochs"`     // > 0; default 1 when Steps is 0
	Steps     int `json:"steps"`      // > 0 overrides Epochs; 0 means "use Epochs"
	Seed      int `json:"seed"`       // default 1
	EvalEvery int `json:"eval_every"` // steps between evaluations; 0 = once per epoch (default)
	LogEvery  int `json:"log_every"`  // steps between metrics lines, default 50
}

// SourceMap answers "where in the spec was this field written?".
type SourceMap struct {
	// Files holds the bytes of every file that contributed, for snippets.
	Files map[string][]byte
	// Fields maps dotted paths ("optimizer.lr", "model.hidden[1]") to the
	// range of the value. A field that was defaulted maps to the range of
	// the nearest enclosing written struct.
	Fields map[string]diag.Range
}

// Pos returns the range for path, walking up to the nearest ancestor that has
// one; the zero Range when none is known.
func (m *SourceMap) Pos(path string) diag.Range {
	if m == nil {
		return diag.Range{}
	}
	for p := path; ; {
		if r, ok := m.Fields[p]; ok {
			return r
		}
		i := lastSep(p)
		if i < 0 {
			if r, ok := m.Fields[""]; ok {
				return r
			}
			return diag.Range{}
		}
		p = p[:i]
	}
}

func lastSep(p string) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '.' || p[i] == '[' {
			return i
		}
	}
	return -1
}
