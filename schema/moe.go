package schema

// MoE is a mixture-of-experts layer (#MoE) or, in a gaussian_moe model, its
// router only (#Router: Hidden, Activation and Layers are zero).
type MoE struct {
	Experts     int    `json:"experts"`     // >= 1, default 8
	TopK        int    `json:"top_k"`       // 1 <= k <= experts, default 2 (experts for a dense gate)
	Gate        string `json:"gate"`        // "topk_softmax" (default) | "softmax_topk" | "dense"
	Renormalize bool   `json:"renormalize"` // softmax_topk: divide the kept weights by their sum
	// Temperature τ of softmax(act(logits)/τ), > 0, default 1; annealed to
	// TemperatureSchedule.End when a schedule is given.
	Temperature         float64 `json:"temperature"`
	TemperatureSchedule *Anneal `json:"temperature_schedule,omitempty"`
	RouterActivation    string  `json:"router_activation"` // "none" (default) | "relu" | "gelu" | "tanh" | "sigmoid"
	// CapacityFactor bounds the tokens per expert to
	// ceil(f·tokens·k/experts); 0 (default) is dropless.
	CapacityFactor float64 `json:"capacity_factor"`
	LoadBalance    float64 `json:"load_balance"` // weight of the load-balancing loss, default 0.01
	ZLoss          float64 `json:"z_loss"`       // weight of the router z-loss, default 0.001
	// Experts' feed-forward layers: d -> Hidden -> d with Activation.
	Hidden     int    `json:"hidden,omitempty"`     // default 256
	Activation string `json:"activation,omitempty"` // "relu" (default) | "gelu" | "tanh" | "sigmoid"
	// Layers: mlp, the hidden layers (1-based) an MoE layer follows;
	// transformer, the blocks whose feed-forward layer is an MoE. Default [1].
	Layers []int `json:"layers,omitempty"`
}

// Anneal schedules a knob from its starting value to End over Steps.
type Anneal struct {
	Kind  string  `json:"kind"`  // "linear" (default) | "cosine" | "exponential"
	End   float64 `json:"end"`   // > 0
	Steps int     `json:"steps"` // 0 (default): the whole run
}
