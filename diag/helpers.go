package diag

import (
	"errors"
	"io/fs"
	"sort"
	"strings"
)

// New builds one diagnostic.
func New(sev Severity, r Range, path, code, summary string) Diagnostic {
	return Diagnostic{Severity: sev, Code: code, Summary: summary, Range: r, Path: path}
}

// File is the Range of a whole file: a name and no line.
func File(name string) Range { return Range{File: name} }

// IsZero reports whether no position is known.
func (r Range) IsZero() bool { return r == Range{} }

// Err returns l as an error when it holds an Error, nil otherwise. Use it
// where a function returns error, so that a List of warnings is not a failure.
func (l List) Err() error {
	if l.HasErrors() {
		return l
	}
	return nil
}

// Sort orders l by file, then position; the sort is stable, so diagnostics
// at the same place keep their order.
func (l List) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Range, l[j].Range
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Start.Line != b.Start.Line {
			return a.Start.Line < b.Start.Line
		}
		return a.Start.Col < b.Start.Col
	})
}

// Code used by FromError for an error that carries no diagnostic of its own.
const (
	CodeError = "E-ERROR"
	CodeIO    = "E-IO"
)

// FromError turns any error into a List: a List (or an error wrapping one)
// passes through, a file-system error points at its file, anything else
// becomes one Error with code E-ERROR. A nil error gives a nil List.
func FromError(err error) List {
	if err == nil {
		return nil
	}
	var l List
	if errors.As(err, &l) {
		return l
	}
	var d Diagnostic
	if errors.As(err, &d) {
		return List{d}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return List{Errorf(File(pe.Path), "", CodeIO, "%s: %s", pe.Op, pe.Err)}
	}
	return List{Errorf(Range{}, "", CodeError, "%s", err.Error())}
}

// Error makes a single Diagnostic usable as an error.
func (d Diagnostic) Error() string { return d.String() }

// Wrapf turns err into a List (see FromError) and prefixes every summary
// with the formatted context, as in "loading plan: ...".
func Wrapf(err error, format string, args ...any) List {
	l := FromError(err)
	if l == nil {
		return nil
	}
	prefix := sprintf(format, args...)
	out := make(List, len(l))
	for i, d := range l {
		d.Summary = prefix + ": " + d.Summary
		out[i] = d
	}
	return out
}

// lines splits src into lines without their line terminators.
func lines(src []byte) []string {
	s := strings.ReplaceAll(string(src), "\r\n", "\n")
	return strings.Split(s, "\n")
}
