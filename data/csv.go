package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/expc-dev/expc/schema"
)

// csvTable is one parsed CSV file: n rows of numeric features and a label.
type csvTable struct {
	x           []float32 // n*features; nil when only the labels were read
	y           []int32
	n, features int
	maxLabel    int
}

// readCSV parses path. With a header the label column is found by name
// (LabelColumn, default "label"); without one LabelColumn may be a 0-based
// column index, and otherwise ("" or "label") the label is the last column.
// Every other column is a feature. With labelsOnly the features are
// counted, not parsed.
func readCSV(path string, ds schema.Dataset, labelsOnly bool) (*csvTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	r.TrimLeadingSpace = true

	name := ds.LabelColumn
	if name == "" {
		name = "label"
	}
	label := -1
	if ds.Header {
		head, err := r.Read()
		if err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("%s: empty file (a header row was expected)", path)
			}
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		for i, h := range head {
			if strings.TrimSpace(h) == name {
				label = i
			}
		}
		if label < 0 {
			return nil, fmt.Errorf("%s:1: no label column %q in the header (columns: %s)", path, name, strings.Join(head, ", "))
		}
	} else if k, err := strconv.Atoi(name); err == nil {
		label = k
	} else if name != "label" {
		return nil, fmt.Errorf("%s: label_column %q names a column but header is false (give a 0-based index, or set header: true)", path, name)
	}

	t := &csvTable{features: -1, maxLabel: -1}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%s:%d: %v", path, pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if t.features < 0 {
			if label < 0 {
				label = len(rec) - 1
			}
			if label >= len(rec) {
				line, _ := r.FieldPos(0)
				return nil, fmt.Errorf("%s:%d: label column %d does not exist (%d columns)", path, line, label, len(rec))
			}
			t.features = len(rec) - 1
			if t.features < 1 {
				line, _ := r.FieldPos(0)
				return nil, fmt.Errorf("%s:%d: no feature columns besides the label", path, line)
			}
			if ds.Features > 0 && t.features != ds.Features {
				line, _ := r.FieldPos(0)
				return nil, fmt.Errorf("%s:%d: %d feature columns, but the spec says features: %d", path, line, t.features, ds.Features)
			}
		}
		y, err := parseLabel(rec[label])
		if err == nil && ds.Classes > 0 && y >= ds.Classes {
			err = fmt.Errorf("label %d is out of range [0, %d)", y, ds.Classes)
		}
		if err != nil {
			line, _ := r.FieldPos(label)
			return nil, fmt.Errorf("%s:%d: column %d: %v", path, line, label+1, err)
		}
		t.y = append(t.y, int32(y))
		t.maxLabel = max(t.maxLabel, y)
		if !labelsOnly {
			for j, s := range rec {
				if j == label {
					continue
				}
				v, err := strconv.ParseFloat(strings.TrimSpace(s), 32)
				if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
					line, _ := r.FieldPos(j)
					return nil, fmt.Errorf("%s:%d: column %d: %q is not a finite number", path, line, j+1, s)
				}
				t.x = append(t.x, float32(v))
			}
		}
		t.n++
	}
	if t.n == 0 {
		return nil, fmt.Errorf("%s: no data rows", path)
	}
	return t, nil
}

// parseLabel accepts a non-negative integer, also written as "3.0".
func parseLabel(s string) (int, error) {
	s = strings.TrimSpace(s)
	if k, err := strconv.Atoi(s); err == nil {
		if k < 0 {
			return 0, fmt.Errorf("label %d is negative", k)
		}
		return k, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != math.Trunc(v) || v < 0 || v > math.MaxInt32 {
		return 0, fmt.Errorf("label %q is not a non-negative integer", s)
	}
	return int(v), nil
}

// readCSVs reads the training file and, when given, the test file, and
// works out the feature count and classes.
func readCSVs(ds schema.Dataset, specDir string, labelsOnly bool) (train, test *csvTable, m Info, err error) {
	if ds.Train == "" {
		return nil, nil, m, fmt.Errorf("csv: train is required")
	}
	if train, err = readCSV(resolve(specDir, ds.Train), ds, labelsOnly); err != nil {
		return nil, nil, m, err
	}
	m = Info{Features: train.features, Classes: ds.Classes}
	if m.Classes <= 0 {
		m.Classes = train.maxLabel + 1
	}
	if ds.Test != "" {
		if test, err = readCSV(resolve(specDir, ds.Test), ds, labelsOnly); err != nil {
			return nil, nil, m, err
		}
		if test.features != train.features {
			return nil, nil, m, fmt.Errorf("csv: %s has %d feature columns, %s has %d", ds.Train, train.features, ds.Test, test.features)
		}
		if ds.Classes <= 0 {
			m.Classes = max(m.Classes, test.maxLabel+1)
		}
		m.TrainN, m.EvalN = train.n, test.n
		return train, test, m, nil
	}
	e, err := evalCount(train.n, ds.EvalFraction)
	if err != nil {
		return nil, nil, m, fmt.Errorf("csv: %s: %v", ds.Train, err)
	}
	m.TrainN, m.EvalN = train.n-e, e
	return train, nil, m, nil
}

func csvMeta(ds schema.Dataset, specDir string) (Info, error) {
	_, _, m, err := readCSVs(ds, specDir, true)
	return m, err
}

func loadCSV(ds schema.Dataset, specDir string) (*Set, error) {
	train, test, m, err := readCSVs(ds, specDir, false)
	if err != nil {
		return nil, err
	}
	s := &Set{Meta: m}
	if test != nil {
		s.Train = Split{X: train.x, Y: train.y, N: train.n}
		s.Eval = Split{X: test.x, Y: test.y, N: test.n}
	} else if s.Train, s.Eval, err = splitRows(train.x, train.y, train.n, m.Features, ds.EvalFraction, uint64(ds.Seed)); err != nil {
		return nil, fmt.Errorf("csv: %v", err)
	}
	if ds.Normalize {
		s.Norm = standardise(&s.Train, &s.Eval, m.Features)
	}
	return s, nil
}
