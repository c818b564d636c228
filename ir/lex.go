package ir

import (
	"fmt"
	"strconv"
	"strings"
)

// The lexer of the graph IR's text form. Newlines are tokens (the syntax is
// one instruction per line); "//" starts a comment that runs to the end of
// the line.

type tokKind uint8

const (
	tEOF     tokKind = iota
	tNewline         // end of a line
	tIdent           // op, keyword, attribute name: [A-Za-z_][A-Za-z0-9_.-]*
	tValue           // %name; text is the name
	tFunc            // @name; text is the name
	tString          // "..."; text is the unquoted string
	tInt             // -?[0-9]+
	tFloat           // anything strconv.ParseFloat takes, plus inf, -inf, nan
	tType            // tensor<...>; text is the whole type
	tPunct           // one of ( ) { } [ ] , : =
)

var tokNames = [...]string{tEOF: "end of input", tNewline: "end of line", tIdent: "identifier",
	tValue: "value", tFunc: "function name", tString: "string", tInt: "integer", tFloat: "float",
	tType: "type", tPunct: "punctuation"}

type token struct {
	kind      tokKind
	text      string
	line, col int
}

func (t token) String() string {
	switch t.kind {
	case tEOF, tNewline:
		return tokNames[t.kind]
	case tValue:
		return "%" + t.text
	case tFunc:
		return "@" + t.text
	case tString:
		return strconv.Quote(t.text)
	}
	return strconv.Quote(t.text)
}

// ParseError is a syntax or semantic error in IR text, at a 1-based line and
// byte column.
type ParseError struct {
	Line, Col int
	Msg       string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

type lexer struct {
	src       string
	pos       int
	line, col int
}

func (lx *lexer) errf(line, col int, format string, args ...any) *ParseError {
	return &ParseError{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (lx *lexer) advance(n int) {
	for i := 0; i < n; i++ {
		if lx.src[lx.pos] == '\n' {
			lx.line++
			lx.col = 1
		} else {
			lx.col++
		}
		lx.pos++
	}
}

// next returns the next token.
func (lx *lexer) next() (token, error) {
	// Skip blanks and comments, but not newlines.
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		if c == ' ' || c == '\t' || c == '\r' {
			lx.advance(1)
		} else if strings.HasPrefix(lx.src[lx.pos:], "//") {
			n := strings.IndexByte(lx.src[lx.pos:], '\n')
			if n < 0 {
				n = len(lx.src) - lx.pos
			}
			lx.advance(n)
		} else {
			break
		}
	}
	tok := token{line: lx.line, col: lx.col}
	if lx.pos >= len(lx.src) {
		return tok, nil
	}
	rest := lx.src[lx.pos:]
	c := rest[0]
	switch {
	case c == '\n':
		tok.kind = tNewline
		lx.advance(1)
	case strings.ContainsRune("(){}[],:=", rune(c)):
		tok.kind, tok.text = tPunct, rest[:1]
		lx.advance(1)
	case c == '"':
		s, n, err := lx.quoted(rest)
		if err != nil {
			return tok, err
		}
		tok.kind, tok.text = tString, s
		lx.advance(n)
	case c == '%' || c == '@':
		tok.kind = tValue
		if c == '@' {
			tok.kind = tFunc
		}
		name, n, err := lx.name(rest[1:])
		if err != nil {
			return tok, err
		}
		tok.text = name
		lx.advance(1 + n)
	case strings.HasPrefix(rest, "tensor<"):
		end := strings.IndexByte(rest, '>')
		if end < 0 || strings.Contains(rest[:end], "\n") {
			return tok, lx.errf(tok.line, tok.col, "unterminated type")
		}
		tok.kind, tok.text = tType, rest[:end+1]
		lx.advance(end + 1)
	case isDigit(c) || c == '-' || c == '+':
		n := 1
		for n < len(rest) && (isNameByte(rest[n]) || (rest[n] == '-' || rest[n] == '+') && (rest[n-1] == 'e' || rest[n-1] == 'E')) {
			n++
		}
		text := rest[:n]
		tok.kind, tok.text = tInt, text
		if _, err := strconv.Atoi(text); err != nil {
			tok.kind = tFloat
			if _, err := strconv.ParseFloat(text, 64); err != nil {
				return tok, lx.errf(tok.line, tok.col, "malformed number %q", text)
			}
		}
		lx.advance(n)
	case c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z'):
		n := 1
		for n < len(rest) && (isNameByte(rest[n]) || rest[n] == '-') {
			n++
		}
		tok.kind, tok.text = tIdent, rest[:n]
		lx.advance(n)
	default:
		return tok, lx.errf(tok.line, tok.col, "unexpected character %q", c)
	}
	return tok, nil
}

// quoted scans a Go string literal at the start of s; it returns the value
// and the literal's length.
func (lx *lexer) quoted(s string) (string, int, error) {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '\n':
			i = len(s)
		case '"':
			v, err := strconv.Unquote(s[:i+1])
			if err != nil {
				return "", 0, lx.errf(lx.line, lx.col, "malformed string %s", s[:i+1])
			}
			return v, i + 1, nil
		}
	}
	return "", 0, lx.errf(lx.line, lx.col, "unterminated string")
}

// name scans a value or function name: bare or quoted.
func (lx *lexer) name(s string) (string, int, error) {
	if strings.HasPrefix(s, `"`) {
		return lx.quoted(s)
	}
	n := 0
	for n < len(s) && isNameByte(s[n]) {
		n++
	}
	if n == 0 {
		return "", 0, lx.errf(lx.line, lx.col, "missing name after %q", lx.src[lx.pos])
	}
	return s[:n], n, nil
}
