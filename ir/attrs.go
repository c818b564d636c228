package ir

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Attrs are an op's compile-time attributes. Values are bool, int, float64,
// string or []int; accessors coerce numbers so that attrs read back from JSON
// (where every number is a float64) behave the same.
type Attrs map[string]any

// Keys returns the attribute names in sorted order (the canonical order for
// printing and hashing).
func (a Attrs) Keys() []string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Int reads an integer attribute, or def when absent.
func (a Attrs) Int(name string, def int) int {
	switch v := a[name].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return def
}

// Float reads a float attribute, or def when absent.
func (a Attrs) Float(name string, def float64) float64 {
	switch v := a[name].(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case int:
		return float64(v)
	case int64:
		return float64(v)
	}
	return def
}

// Bool reads a boolean attribute, or def when absent.
func (a Attrs) Bool(name string, def bool) bool {
	if v, ok := a[name].(bool); ok {
		return v
	}
	return def
}

// Str reads a string attribute, or def when absent.
func (a Attrs) Str(name string, def string) string {
	if v, ok := a[name].(string); ok {
		return v
	}
	return def
}

// Ints reads an integer-list attribute.
func (a Attrs) Ints(name string) []int {
	switch v := a[name].(type) {
	case []int:
		return v
	case []any:
		out := make([]int, len(v))
		for i, x := range v {
			f, _ := x.(float64)
			out[i] = int(f)
		}
		return out
	}
	return nil
}

// Clone copies the map (values are immutable by convention).
func (a Attrs) Clone() Attrs {
	if a == nil {
		return nil
	}
	b := make(Attrs, len(a))
	for k, v := range a {
		b[k] = v
	}
	return b
}

// FormatAttr prints one attribute value in the text IR's syntax. Floats always
// carry a '.' or an exponent so the parser can tell them from ints, and use
// the shortest form that round-trips.
func FormatAttr(v any) string {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return formatFloat(x)
	case float32:
		return formatFloat(float64(x))
	case string:
		return strconv.Quote(x)
	case []int:
		parts := make([]string, len(x))
		for i, n := range x {
			parts[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprintf("%q", fmt.Sprint(v))
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

// FormatAttrs prints {k = v, ...} in sorted key order, or "" when empty.
func FormatAttrs(a Attrs) string {
	if len(a) == 0 {
		return ""
	}
	parts := make([]string, 0, len(a))
	for _, k := range a.Keys() {
		parts = append(parts, k+" = "+FormatAttr(a[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
