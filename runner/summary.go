package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Run statuses.
const (
	StatusCompleted   = "completed"
	StatusInterrupted = "interrupted"
	StatusFailed      = "failed"
)

// SummaryFile is the summary's name inside a run directory.
const SummaryFile = "summary.json"

// Summary is summary.json: what a run did.
type Summary struct {
	RunID            string  `json:"run_id"`
	Status           string  `json:"status"` // "completed" | "interrupted" | "failed"
	Error            string  `json:"error,omitempty"`
	Plan             PlanRef `json:"plan"`
	Backend          string  `json:"backend"`
	Steps            int     `json:"steps"`       // completed training steps
	TotalSteps       int     `json:"total_steps"` // steps the run was asked for
	Epochs           float64 `json:"epochs"`      // Steps / steps per epoch
	WallSeconds      float64 `json:"wall_seconds"`
	SamplesPerSecond float64 `json:"samples_per_second"` // training steps only
	Final            Final   `json:"final"`
	Started          string  `json:"started"`  // RFC 3339, UTC
	Finished         string  `json:"finished"` // RFC 3339, UTC
}

// PlanRef names the plan a run executed.
type PlanRef struct {
	Hash string `json:"hash"`
	Name string `json:"name"`
}

// Final holds the metrics at the end of the run. TrainLoss is the mean
// training loss over the last min(log_every, steps) steps of the last
// session; EvalLoss and EvalAccuracy (a fraction in [0,1]) come from the
// last evaluation and are 0 when none ran; EvalAccuracy is NaN (null in
// JSON) for a model without one (a regression). A non-finite value is written as
// null.
type Final struct {
	TrainLoss    float64 `json:"train_loss"`
	EvalLoss     float64 `json:"eval_loss"`
	EvalAccuracy float64 `json:"eval_accuracy"`
}

// MarshalJSON writes non-finite values as null (JSON has no NaN).
func (f Final) MarshalJSON() ([]byte, error) {
	b := []byte(`{"train_loss":`)
	b = appendJSONFloat(b, f.TrainLoss, 64)
	b = append(b, `,"eval_loss":`...)
	b = appendJSONFloat(b, f.EvalLoss, 64)
	b = append(b, `,"eval_accuracy":`...)
	b = appendJSONFloat(b, f.EvalAccuracy, 64)
	return append(b, '}'), nil
}

// appendJSONFloat appends v as a JSON number, in the shortest form that
// round-trips at the given bit size, or null when it is not finite.
func appendJSONFloat(b []byte, v float64, bits int) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	// Like encoding/json: plain decimals unless very small or very large.
	format := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, v, format, -1, bits)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func writeSummary(path string, s *Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// PrintSummary writes the human-readable block that ends a run.
func PrintSummary(w io.Writer, s *Summary, dir string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nrun %s: %s\n", s.RunID, s.Status)
	if s.Error != "" {
		fmt.Fprintf(&b, "  error       %s\n", s.Error)
	}
	fmt.Fprintf(&b, "  steps       %d/%d (%.2f epochs)\n", s.Steps, s.TotalSteps, s.Epochs)
	fmt.Fprintf(&b, "  wall time   %s\n", time.Duration(s.WallSeconds*float64(time.Second)).Round(100*time.Millisecond))
	fmt.Fprintf(&b, "  samples/s   %.0f\n", s.SamplesPerSecond)
	fmt.Fprintf(&b, "  train loss  %.4f\n", s.Final.TrainLoss)
	switch {
	case s.Final.EvalLoss == 0 && s.Final.EvalAccuracy == 0:
		b.WriteString("  eval        none\n")
	case math.IsNaN(s.Final.EvalAccuracy): // the model has no accuracy
		fmt.Fprintf(&b, "  eval loss   %.4f\n", s.Final.EvalLoss)
	default:
		fmt.Fprintf(&b, "  eval loss   %.4f  accuracy %.2f%%\n", s.Final.EvalLoss, 100*s.Final.EvalAccuracy)
	}
	fmt.Fprintf(&b, "  run dir     %s\n", dir)
	io.WriteString(w, b.String())
}
