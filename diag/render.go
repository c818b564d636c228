package diag

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ANSI escapes used when Render is asked for color.
const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiRed   = "\x1b[1;31m"
	ansiYel   = "\x1b[1;33m"
	ansiCyan  = "\x1b[1;36m"
	ansiGreen = "\x1b[1;32m"
	ansiDim   = "\x1b[2m"
)

// Render writes every diagnostic of list to w in the one human form:
//
//	specs/x.cue:4:30: error: optimizer.lr must be > 0, got -0.1
//	    4 | optimizer: {kind: "sgd", lr: -0.1}
//	      |                              ^^^^
//	  hint: ...
//
// The snippet is printed when files holds the bytes of the diagnostic's file
// and its start line exists there; the carets underline the range on its
// first line (End is exclusive; an empty range gets one caret). Each line of
// Detail is printed under the snippet, the first one prefixed "hint: ".
func Render(w io.Writer, list List, files map[string][]byte, color bool) error {
	var b strings.Builder
	for _, d := range list {
		renderOne(&b, d, files, color)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func renderOne(b *strings.Builder, d Diagnostic, files map[string][]byte, color bool) {
	paint := func(style, s string) string {
		if !color {
			return s
		}
		return style + s + ansiReset
	}
	sev := d.Severity
	if sev == "" {
		sev = Error
	}
	style := map[Severity]string{Error: ansiRed, Warning: ansiYel, Note: ansiCyan}[sev]
	b.WriteString(paint(ansiBold, d.Range.prefix()))
	b.WriteString(paint(style, string(sev)+":"))
	b.WriteString(" ")
	b.WriteString(paint(ansiBold, d.Summary))
	b.WriteString("\n")

	if line, ok := sourceLine(files, d.Range); ok {
		num := strconv.Itoa(d.Range.Start.Line)
		gutter := strings.Repeat(" ", len(num))
		fmt.Fprintf(b, "    %s %s\n", paint(ansiDim, num+" |"), line)
		pad, width := caret(line, d.Range)
		fmt.Fprintf(b, "    %s %s%s\n", paint(ansiDim, gutter+" |"), pad, paint(ansiGreen, strings.Repeat("^", width)))
	}
	if d.Detail != "" {
		for i, l := range strings.Split(strings.TrimRight(d.Detail, "\n"), "\n") {
			if i == 0 {
				b.WriteString("  " + paint(ansiCyan, "hint:") + " " + l + "\n")
			} else {
				b.WriteString("        " + l + "\n")
			}
		}
	}
}

// sourceLine returns the text of the range's start line, without a trailing
// carriage return, when the file is known and the line exists.
func sourceLine(files map[string][]byte, r Range) (string, bool) {
	src, ok := files[r.File]
	if !ok || r.Start.Line < 1 || r.Start.Col < 1 {
		return "", false
	}
	ls := lines(src)
	if r.Start.Line > len(ls) {
		return "", false
	}
	line := ls[r.Start.Line-1]
	if !utf8.ValidString(line) || strings.ContainsFunc(line, isControl) {
		return "", false
	}
	return line, true
}

// isControl reports a character that would garble a terminal (tab is fine).
func isControl(r rune) bool {
	return r != '\t' && (r < 0x20 || r == 0x7f)
}

// caret returns the padding before the carets (tabs kept so the carets line
// up under a tab-indented line) and the number of carets.
func caret(line string, r Range) (pad string, width int) {
	start := min(r.Start.Col-1, len(line))
	end := start
	switch {
	case r.End.Line == r.Start.Line && r.End.Col > r.Start.Col:
		end = min(r.End.Col-1, len(line))
	case r.End.Line > r.Start.Line:
		end = len(line)
	}
	var p strings.Builder
	for _, c := range line[:start] {
		if c == '\t' {
			p.WriteByte('\t')
		} else {
			p.WriteByte(' ')
		}
	}
	return p.String(), max(1, utf8.RuneCountInString(line[start:end]))
}

// RenderJSON writes list as {"diagnostics":[...]} for machines; an empty list
// is written as an empty array, never null.
func RenderJSON(w io.Writer, list List) error {
	if list == nil {
		list = List{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Diagnostics List `json:"diagnostics"`
	}{list})
}
