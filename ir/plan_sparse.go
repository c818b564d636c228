package ir

import (
	"fmt"
	"strconv"
	"strings"
)

// MaskSchedule says when the runner runs the mask program of a sparse
// training plan, and which state belongs to which masked layer.
type MaskSchedule struct {
	Program string `json:"program"` // "mask"
	// Steps are 0-based step indices, ascending: before running train step
	// s the runner runs Program with its "step" input set to s when s is
	// listed. Step 0 chooses the first masks.
	Steps  []int       `json:"steps"`
	Layers []MaskLayer `json:"layers"`
}

// MaskLayer names the state of one masked layer.
type MaskLayer struct {
	Layer   string  `json:"layer"`   // fc1
	Weight  string  `json:"weight"`  // the param it masks: fc1.w
	Mask    string  `json:"mask"`    // the 0/1 state of the weight's shape: fc1.mask
	Gen     string  `json:"gen"`     // the mask's generation (i32 state): fc1.mask.gen
	Pattern string  `json:"pattern"` // "unstructured", "2:4", "block 32x32"
	Density float64 `json:"density"` // final density of this layer
}

// Has reports whether the mask program runs before step s.
func (m *MaskSchedule) Has(s int) bool {
	if m == nil {
		return false
	}
	lo, hi := 0, len(m.Steps)
	for lo < hi {
		mid := (lo + hi) / 2
		if m.Steps[mid] < s {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo < len(m.Steps) && m.Steps[lo] == s
}

// String prints the schedule on one line, arithmetic runs of steps folded:
// "program=mask steps=[0, 100..1000/100, 2400] layers=fc1(unstructured 0.1), ...".
func (m *MaskSchedule) String() string {
	var parts []string
	for i := 0; i < len(m.Steps); {
		j := i + 1
		if j < len(m.Steps) {
			d := m.Steps[j] - m.Steps[i]
			for j+1 < len(m.Steps) && m.Steps[j+1]-m.Steps[j] == d {
				j++
			}
			if j-i >= 2 {
				parts = append(parts, fmt.Sprintf("%d..%d/%d", m.Steps[i], m.Steps[j], d))
				i = j + 1
				continue
			}
		}
		parts = append(parts, strconv.Itoa(m.Steps[i]))
		i++
	}
	var layers []string
	for _, l := range m.Layers {
		layers = append(layers, fmt.Sprintf("%s(%s %s)", l.Layer, l.Pattern, formatFloat(l.Density)))
	}
	return fmt.Sprintf("program=%s steps=[%s] layers=%s", m.Program, strings.Join(parts, ", "), strings.Join(layers, ", "))
}
