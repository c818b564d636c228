package schema

import (
	"strings"
	"unicode"
)

// suggest picks the name in candidates the user most likely meant by got, or
// "" when none is close. In order: the same name up to case and separators
// ("labelSmoothing" -> "label_smoothing"); an abbreviation made of the
// initials of the words ("learning_rate" -> "lr"); the nearest name by
// Levenshtein distance within a third of its length; a name of which got is
// a whole word ("mnist" -> "fashion-mnist"), when only one is.
func suggest(got string, candidates []string) string {
	g := normalize(got)
	for _, c := range candidates {
		if normalize(c) == g {
			return c
		}
	}
	gw := words(got)
	for _, c := range candidates {
		if len(gw) > 1 && initials(gw) == normalize(c) {
			return c
		}
	}
	best, bestD := "", 0
	for _, c := range candidates {
		d := levenshtein(g, normalize(c))
		if limit := max(1, (max(len(g), len(normalize(c)))+2)/3); d <= limit && (best == "" || d < bestD) {
			best, bestD = c, d
		}
	}
	if best != "" {
		return best
	}
	var match []string
	for _, c := range candidates {
		for _, w := range words(c) {
			if w == g && len(g) >= 2 {
				match = append(match, c)
				break
			}
		}
	}
	if len(match) == 1 {
		return match[0]
	}
	return ""
}

// words splits a name at '_', '-', '.', spaces and lower-to-upper case changes,
// lower-casing each word.
func words(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	var prev rune
	for _, r := range s {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ' ':
			flush()
		case unicode.IsUpper(r) && unicode.IsLower(prev):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
		prev = r
	}
	flush()
	return out
}

func normalize(s string) string { return strings.Join(words(s), "") }

func initials(ws []string) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w[:1])
	}
	return b.String()
}

// levenshtein is the edit distance between a and b, counted in runes, with
// the swap of two neighbours counting as one edit (optimal string alignment),
// since "cdua" is a typo for "cuda".
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
