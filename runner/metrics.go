package runner

import (
	"math"
	"os"
	"strconv"
)

// MetricsFile is the metrics log's name inside a run directory.
const MetricsFile = "metrics.jsonl"

// metricsLog appends JSON lines to metrics.jsonl, one write per line,
// formatting into a reused buffer so that logging does not allocate.
//
// Training lines: {"step","epoch","loss","lr","samples_per_second",
// "elapsed_seconds"}; evaluation lines: {"step","eval_loss","eval_accuracy"}.
// step counts completed steps; non-finite numbers are written as null.
type metricsLog struct {
	f      *os.File
	buf    []byte
	extras []extraMetric // method metrics added to training lines (extras.go)
}

func openMetrics(path string) (*metricsLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsLog{f: f, buf: make([]byte, 0, 256)}, nil
}

func (m *metricsLog) train(step int, epoch float64, loss, lr float32, sps, elapsed float64) error {
	b := append(m.buf[:0], `{"step":`...)
	b = strconv.AppendInt(b, int64(step), 10)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendFloat(b, epoch, 'f', 4, 64)
	b = append(b, `,"loss":`...)
	b = appendJSONFloat(b, float64(loss), 32)
	b = append(b, `,"lr":`...)
	b = appendJSONFloat(b, float64(lr), 32)
	b = append(b, `,"samples_per_second":`...)
	b = appendJSONFloat(b, round(sps, 1), 64)
	b = append(b, `,"elapsed_seconds":`...)
	b = appendJSONFloat(b, round(elapsed, 3), 64)
	b = appendExtras(b, m.extras)
	return m.write(append(b, "}\n"...))
}

func (m *metricsLog) eval(step int, loss, acc float64) error {
	b := append(m.buf[:0], `{"step":`...)
	b = strconv.AppendInt(b, int64(step), 10)
	b = append(b, `,"eval_loss":`...)
	b = appendJSONFloat(b, loss, 32)
	b = append(b, `,"eval_accuracy":`...)
	b = appendJSONFloat(b, acc, 64)
	return m.write(append(b, "}\n"...))
}

func (m *metricsLog) write(b []byte) error {
	m.buf = b
	_, err := m.f.Write(b)
	return err
}

func (m *metricsLog) close() error { return m.f.Close() }

// round rounds v to the given number of decimals.
func round(v float64, decimals int) float64 {
	p := 1.0
	for range decimals {
		p *= 10
	}
	return math.Round(v*p) / p
}
