package schema

// Method is how the model is trained beyond plain supervised learning; nil
// when the spec has no method block (the plan hash of such specs does not
// change when methods are added).
type Method struct {
	Sparsity *Sparsity `json:"sparsity,omitempty"`
}

// Sparsity masks the weights of the selected layers (W ⊙ M).
type Sparsity struct {
	// Layers are globs over layer names ("fc1", "fc*"); default ["*"].
	Layers []string `json:"layers"`
	// Pattern is "unstructured" (default), "N:M" or "block".
	Pattern string `json:"pattern"`
	// N and M of an "N:M" pattern (0 otherwise).
	N int `json:"n,omitempty"`
	M int `json:"m,omitempty"`
	// Block is [rows, cols] of a "block" pattern: rows along the input
	// features, cols along the outputs (default [32, 32]).
	Block []int `json:"block,omitempty"`
	// Density is the fraction of weights kept (final density of a gradual
	// schedule); N/M for N:M. Default 0.1.
	Density float64 `json:"density"`
	// Init chooses the first mask: "random" (default) or "magnitude".
	Init string `json:"init"`
	// Allocation of densities over layers: "uniform" (default) or "erk".
	Allocation string `json:"allocation"`
	// IsoFLOP widens the hidden layers so non-zero MACs match the dense model.
	IsoFLOP bool `json:"iso_flop"`
	// Seed of the random masks, mixed with train.seed (default 0).
	Seed     int              `json:"seed"`
	Schedule SparsitySchedule `json:"schedule"`
}

// SparsitySchedule says when masks change.
type SparsitySchedule struct {
	// Kind is "static" (default), "gradual" or "reselect".
	Kind string `json:"kind"`
	// gradual: density falls from InitialDensity (default 1) to the final
	// density between steps Start and End on a cubic curve, every Every steps.
	InitialDensity float64 `json:"initial_density,omitempty"`
	Start          int     `json:"start,omitempty"`
	End            int     `json:"end,omitempty"`
	// gradual and reselect: steps between mask updates (default 100).
	Every int `json:"every,omitempty"`
	// DenseAt switches to dense training: a step when >= 1, a fraction of
	// the run when below 1; 0 means never.
	DenseAt float64 `json:"dense_at,omitempty"`
}
