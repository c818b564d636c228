package explain

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expc-dev/expc/pipeline"
)

func buildMoEPlan(t *testing.T, opt int) *pipeline.Result {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.cue")
	src := `name: "moe-explain"
dataset: {name: "blobs", batch: 64, samples: 400, dim: 8}
model: {kind: "mlp", hidden: [16], moe: {experts: 4, top_k: 2, hidden: 32, capacity_factor: 1.5}}
`
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	res, diags := pipeline.Build(p, pipeline.Options{OptLevel: opt})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return res
}

// TestMoERoutingPlan: explain shows each MoE layer's routing and the
// shapes of its expert GEMMs, fused or not.
func TestMoERoutingPlan(t *testing.T) {
	res := buildMoEPlan(t, 1)
	r := Build(res.Plan, nil)
	if len(r.MoE) != 2 {
		t.Fatalf("%d moe layers, want train and eval: %+v", len(r.MoE), r.MoE)
	}
	l := r.MoE[0]
	if !l.Fused || l.Tokens != 64 || l.Experts != 4 || l.TopK != 2 || l.Capacity != 48 || l.Dropless || l.Slots != 128 ||
		l.Width != 16 || l.Hidden != 32 || len(l.GEMMs) != 6 {
		t.Errorf("train layer %+v", l)
	}
	var buf bytes.Buffer
	if err := Text(&buf, res.Plan, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"moe layers", "64 tokens -> 4 experts, top-2 topk_softmax", "capacity 48 tokens per expert",
		"[n_e,16]·[16,32] + b, relu", "[n_e,32]ᵀ·[n_e,16] (dW2)", "moe_route"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, buf.String())
		}
	}
	unf := Build(buildMoEPlan(t, 0).Plan, nil)
	if len(unf.MoE) != 2 || unf.MoE[0].Fused || unf.MoE[0].Capacity != 48 || len(unf.MoE[0].Kernels) != 5 {
		t.Errorf("unfused layer %+v", unf.MoE)
	}
}
