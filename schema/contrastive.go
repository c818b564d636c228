package schema

// The parts of a contrastive spec (schema.cue: #Views, #Contrastive,
// #Temperature, #Negatives, #Probe).

// Views makes two views of each training example.
type Views struct {
	Pairing    string  `json:"pairing"`    // "augment" | "same_class"
	Crop       int     `json:"crop"`       // random shift, pixels each way
	Flip       bool    `json:"flip"`       // horizontal flip with probability 1/2
	Erase      float64 `json:"erase"`      // probability of erasing a rectangle
	Brightness float64 `json:"brightness"` // x + U(-b, b)
	Contrast   float64 `json:"contrast"`   // mean + (x-mean)·U(1-c, 1+c)
	Noise      float64 `json:"noise"`      // Gaussian noise std
	Seed       int     `json:"seed"`
}

// Temperature is τ of a contrastive loss.
type Temperature struct {
	Kind  string  `json:"kind"`          // "fixed" | "scheduled" | "learnable"
	Value float64 `json:"value"`         // τ; the start of a schedule; the initial learnable τ
	End   float64 `json:"end,omitempty"` // scheduled: τ at the end of the run
	Min   float64 `json:"min,omitempty"` // learnable: bounds of every τ_i
	Max   float64 `json:"max,omitempty"`
}

// Negatives says which other rows are in an anchor's denominator.
type Negatives struct {
	Kind  string `json:"kind"`            // "in_batch" | "hard" | "guided"
	K     int    `json:"k,omitempty"`     // hard: negatives kept per anchor
	Guide string `json:"guide,omitempty"` // guided: "pixels" | "random_projection"
	Dim   int    `json:"dim,omitempty"`   // guided random_projection: features
}

// Probe evaluates the frozen representation.
type Probe struct {
	Kind   string  `json:"kind"`   // "linear" | "knn": the one reported as eval_accuracy
	Epochs int     `json:"epochs"` // linear probe
	LR     float64 `json:"lr"`
	K      int     `json:"k"` // kNN neighbours
}
