package ir

// ContrastivePlan is what the runner needs to know about a contrastive
// plan: how to lay out the views and how to evaluate the representation.
type ContrastivePlan struct {
	Objective string `json:"objective"`
	// Rows of the train program's x: 2N (view one of each example, then
	// view two) or, for two towers (Dual), N with the second views in x2.
	Rows int  `json:"rows"`
	Dual bool `json:"dual,omitempty"`
	// IDs: the train program reads the examples' dataset indices ("ids").
	IDs       bool      `json:"ids,omitempty"`
	Features  int       `json:"features"`  // width of the eval program's "features"
	Embedding int       `json:"embedding"` // width of its "embedding"
	Probe     ProbePlan `json:"probe"`
	// UnfusedArenaBytes is the arena the same plan needs without
	// fuse-contrastive (0 when the pass did not run or changed nothing).
	UnfusedArenaBytes int64 `json:"unfused_arena_bytes,omitempty"`
}

// ProbePlan is the frozen-feature evaluation.
type ProbePlan struct {
	Kind   string  `json:"kind"` // "linear" | "knn": the one reported as eval_accuracy
	Epochs int     `json:"epochs"`
	LR     float64 `json:"lr"`
	K      int     `json:"k"`
}
