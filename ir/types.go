// Package ir holds both levels of expc's intermediate representation: the
// graph IR (typed SSA values, ops from one table) that the compiler builds and
// the passes rewrite, and the plan IR (kernels over buffers in one arena) that
// backends execute.
package ir

import (
	"fmt"
	"strconv"
	"strings"
)

// DType is an element type.
type DType uint8

const (
	F32 DType = iota + 1
	I32
)

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case I32:
		return "i32"
	}
	return "invalid"
}

// Size is the width of one element in bytes.
func (d DType) Size() int64 { return 4 }

// ParseDType is the inverse of DType.String.
func ParseDType(s string) (DType, error) {
	switch s {
	case "f32":
		return F32, nil
	case "i32":
		return I32, nil
	}
	return 0, fmt.Errorf("unknown element type %q", s)
}

// MarshalText makes DType print as "f32" in JSON plans.
func (d DType) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses "f32"/"i32".
func (d *DType) UnmarshalText(b []byte) error {
	v, err := ParseDType(string(b))
	*d = v
	return err
}

// Shape is a list of static dimensions; the empty shape is a scalar.
type Shape []int

// Elems is the number of elements (1 for a scalar).
func (s Shape) Elems() int64 {
	n := int64(1)
	for _, d := range s {
		n *= int64(d)
	}
	return n
}

// Equal reports whether two shapes have the same dimensions.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Type is a tensor type: element type and static shape.
type Type struct {
	DType DType `json:"dtype"`
	Shape Shape `json:"shape"`
}

// Tensor is shorthand for a Type.
func Tensor(d DType, dims ...int) Type { return Type{DType: d, Shape: Shape(dims)} }

// Scalar is a rank-0 tensor type.
func Scalar(d DType) Type { return Type{DType: d, Shape: Shape{}} }

// Bytes is the storage size of one value of this type.
func (t Type) Bytes() int64 { return t.Shape.Elems() * t.DType.Size() }

// Rank is the number of dimensions.
func (t Type) Rank() int { return len(t.Shape) }

// Equal compares element type and shape.
func (t Type) Equal(o Type) bool { return t.DType == o.DType && t.Shape.Equal(o.Shape) }

func (t Type) String() string { return "tensor<" + t.DType.String() + "," + t.Shape.String() + ">" }

// ParseType parses the printed form tensor<f32,[2,3]>.
func ParseType(s string) (Type, error) {
	body, ok := strings.CutPrefix(s, "tensor<")
	if !ok || !strings.HasSuffix(body, ">") {
		return Type{}, fmt.Errorf("malformed type %q: want tensor<dtype,[dims]>", s)
	}
	body = strings.TrimSuffix(body, ">")
	dt, dims, ok := strings.Cut(body, ",")
	if !ok {
		return Type{}, fmt.Errorf("malformed type %q: missing shape", s)
	}
	d, err := ParseDType(strings.TrimSpace(dt))
	if err != nil {
		return Type{}, err
	}
	dims = strings.TrimSpace(dims)
	if !strings.HasPrefix(dims, "[") || !strings.HasSuffix(dims, "]") {
		return Type{}, fmt.Errorf("malformed shape %q", dims)
	}
	dims = strings.TrimSpace(dims[1 : len(dims)-1])
	shape := Shape{}
	if dims != "" {
		for _, f := range strings.Split(dims, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return Type{}, fmt.Errorf("malformed dimension %q in %q", f, s)
			}
			shape = append(shape, n)
		}
	}
	return Type{DType: d, Shape: shape}, nil
}

// Loc is the spec position an IR value came from.
type Loc struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

// IsZero reports whether no position is known.
func (l Loc) IsZero() bool { return l.File == "" && l.Line == 0 }

func (l Loc) String() string {
	if l.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", strconv.Quote(l.File), l.Line, l.Col)
}
