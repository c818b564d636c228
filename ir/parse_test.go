package ir

import (
	"errors"
	"strings"
	"testing"
)

const parseHeader = "module m\n\nfunc @f(%x: tensor<f32,[2,3]> input, %y: tensor<i32,[2]> input, %w: tensor<f32,[3,4]> param) {\n"

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string // body lines start at line 4
		line, col  int
		msg        string
	}{
		{"unknown op", "  %a = frobnicate %x\n", 4, 8, `unknown op "frobnicate"`},
		{"undefined value", "  %a = relu %x\n  %b = add %a, %zz\n", 5, 16, "undefined value %zz"},
		{"use before def", "  %a = add %x, %b\n  %b = relu %x\n", 4, 16, "undefined value %b"},
		{"type mismatch", "  %a = matmul %w, %x\n", 4, 8, "inner dimensions differ"},
		{"dtype mismatch", "  %a = relu %y\n", 4, 8, "want f32"},
		{"arity", "  %a = relu %x, %x\n", 4, 8, "relu takes 1 arguments, got 2"},
		{"duplicate name", "  %a = relu %x\n  %a = neg %x\n", 5, 3, "%a is defined twice"},
		{"redefine param", "  %x = relu %x\n", 4, 3, "%x is defined twice"},
		{"result count", "  %a = sgd %w, %w, %w, %w\n", 4, 8, "lr must be"},
		{"too few results", "  %a = softmax_xent_fused %x, %y, %x\n", 4, 8, "dloss must be"},
		{"unknown attr", "  %a = relu %x {alpha = 1.0}\n", 4, 16, `unknown attribute "alpha"`},
		{"wrong attr kind", "  %a = matmul %x, %w {transpose_b = 1}\n", 4, 22, `attribute "transpose_b" has the wrong type`},
		{"attr not one of", "  %a = matmul_bias_act %x, %w {act = \"swish\"}\n", 4, 31, "want one of"},
		{"missing attr", "  %a = scale %x\n", 4, 8, `missing attribute "factor"`},
		{"duplicate attr", "  %a = scale %x {factor = 1.0, factor = 2.0}\n", 4, 32, `attribute "factor" given twice`},
		{"bad attr value", "  %a = scale %x {factor = %x}\n", 4, 27, "expected an attribute value"},
		{"missing comma", "  %a = add %x %x\n", 4, 15, `expected ",", found %x`},
		{"bad loc", "  %a = relu %x loc(\"f\":1)\n", 4, 25, `expected ":"`},
		{"unterminated string", "  %a = relu %x loc(\"f:1:2)\n", 4, 20, "unterminated string"},
		{"undefined output", "  return %q as \"q\"\n", 4, 10, "undefined value %q"},
		{"return not last", "  return %x as \"x\"\n  %a = relu %x\n", 5, 3, "return must be the last line"},
		{"bad char", "  %a = relu %x $\n", 4, 16, `unexpected character '$'`},
		{"results for none", "  %a, %b = relu %x\n", 4, 12, "relu has 1 results, 2 named"},
		{"negative shape", "  %a = fill {shape = [-1], value = 0.0}\n", 4, 8, "negative dimension"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(parseHeader + tc.body + "}\n")
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("want a *ParseError, got %v", err)
			}
			if pe.Line != tc.line || pe.Col != tc.col || !strings.Contains(pe.Msg, tc.msg) {
				t.Fatalf("got %v, want %d:%d: ...%s...", err, tc.line, tc.col, tc.msg)
			}
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"", `1:1: expected "module", found end of input`},
		{"module m\nfunc @f(%x: tensor<f33,[2]> input) {\n}\n", `2:13: unknown element type "f33"`},
		{"module m\nfunc @f(%x: tensor<f32,[2]> weight) {\n}\n", `2:29: unknown role "weight" (want input, param or state)`},
		{"module m\nfunc @f() {\n}\nfunc @f() {\n}\n", "4:1: function @f defined twice"},
		{"module m\nfunc @f() {\n", `3:1: expected "}", found end of input`},
	} {
		_, err := Parse(tc.src)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v, want %s", tc.src, err, tc.want)
		}
	}
}

// Values of one function are not visible in another.
func TestParseScopes(t *testing.T) {
	src := "module m\nfunc @f(%x: tensor<f32,[2]> input) {\n  %a = relu %x\n  return %a as \"a\"\n}\n" +
		"func @g(%z: tensor<f32,[2]> input) {\n  %b = relu %a\n}\n"
	_, err := Parse(src)
	if err == nil || err.Error() != "7:13: undefined value %a" {
		t.Fatalf("got %v", err)
	}
}

// FuzzParse checks that the parser never panics and that whatever it
// accepts prints to a fixed point.
func FuzzParse(f *testing.F) {
	f.Add(parseHeader + "  %a = relu %x\n  return %a as \"a\"\n}\n")
	f.Add("module m\nfunc @f() {\n  %c = fill {shape = [2], value = -1e-08}  loc(\"a\\\"b\":1:2)\n  return %c as \"c\"\n}\n")
	f.Fuzz(func(t *testing.T, src string) {
		m, err := Parse(src)
		if err != nil {
			return
		}
		text := Print(m)
		m2, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(Print(m)): %v\n%s", err, text)
		}
		if text2 := Print(m2); text2 != text {
			t.Fatalf("not a fixed point:\n%s\n---\n%s", text, text2)
		}
	})
}
