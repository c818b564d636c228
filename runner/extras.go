package runner

import (
	"strings"

	"github.com/expc-dev/expc/backends"
	"github.com/expc-dev/expc/ir"
)

// MetricPrefix marks the train program's outputs that are method metrics
// (a mixture-of-experts layer's per-expert load and dropped tokens, ...):
// every training line of metrics.jsonl carries each as "<name>": its value
// at the logged step, a number for a scalar and an array otherwise.
const MetricPrefix = "metrics."

type extraMetric struct {
	name string
	v    []float32
}

// metricOutputs finds the train program's metric outputs, in plan order.
func metricOutputs(p *ir.Plan, prog *ir.Program, exe backends.Executable) []extraMetric {
	var out []extraMetric
	for _, o := range prog.Outputs {
		name, ok := strings.CutPrefix(o.Name, MetricPrefix)
		if !ok {
			continue
		}
		if b := buffer(p, o.Buffer); b == nil || b.Type.DType != ir.F32 || b.Type.Rank() > 1 {
			continue
		}
		out = append(out, extraMetric{name: name, v: exe.F32(o.Buffer)})
	}
	return out
}

// appendExtras writes `,"name":value` for each metric; it does not allocate
// once b has grown.
func appendExtras(b []byte, ms []extraMetric) []byte {
	for _, m := range ms {
		b = append(b, ',', '"')
		b = append(b, m.name...)
		b = append(b, '"', ':')
		if len(m.v) == 1 {
			b = appendJSONFloat(b, float64(m.v[0]), 32)
			continue
		}
		b = append(b, '[')
		for i, v := range m.v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONFloat(b, float64(v), 32)
		}
		b = append(b, ']')
	}
	return b
}
