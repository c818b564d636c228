// Package diag is the one diagnostic type of the whole tool: every user-facing
// error (spec, compiler, runner) is a Diagnostic with a source range, rendered
// as `file:line:col: error: ...` with a snippet, or as JSON for machines.
package diag

// Severity orders diagnostics; only Error stops a build.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Note    Severity = "note"
)

// Pos is a 1-based line and column (column counts bytes) plus a 0-based byte offset.
type Pos struct {
	Line   int `json:"line"`
	Col    int `json:"col"`
	Offset int `json:"offset"`
}

// Range is a span in one source file. A zero Range means "no position known".
type Range struct {
	File  string `json:"file"`
	Start Pos    `json:"start"`
	End   Pos    `json:"end"`
}

// Diagnostic is one message for the user.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`             // stable machine code, e.g. "E-SPEC-UNKNOWN-KEY"
	Summary  string   `json:"summary"`          // one line, lower case, no trailing period
	Detail   string   `json:"detail,omitempty"` // extra lines: hints, did-you-mean, estimates
	Range    Range    `json:"range"`
	Path     string   `json:"path,omitempty"` // spec field path, e.g. "optimizer.lr"
}

// List is a set of diagnostics; it is an error when it holds at least one Error.
type List []Diagnostic

func (l List) Error() string {
	if len(l) == 0 {
		return "no diagnostics"
	}
	return l[0].String()
}

// HasErrors reports whether any diagnostic is an Error.
func (l List) HasErrors() bool {
	for _, d := range l {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// String is the one-line form: file:line:col: severity: summary.
func (d Diagnostic) String() string {
	return d.Range.prefix() + string(d.Severity) + ": " + d.Summary
}

func (r Range) prefix() string {
	switch {
	case r.File == "":
		return ""
	case r.Start.Line == 0:
		return r.File + ": "
	default:
		return r.File + ":" + itoa(r.Start.Line) + ":" + itoa(r.Start.Col) + ": "
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Errorf builds a single error Diagnostic at r.
func Errorf(r Range, path, code, format string, args ...any) Diagnostic {
	return Diagnostic{Severity: Error, Code: code, Summary: sprintf(format, args...), Range: r, Path: path}
}
