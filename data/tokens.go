package data

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/expc-dev/expc/schema"
)

// Synthetic token streams (dataset "tokens") for sequence models. An
// example is W = seq_len+1 token ids (stored as float32, exact for any
// vocabulary below 2^24): the model reads the first seq_len and predicts
// the last seq_len. Its label is the index of its source in Sources, so a
// padding row can be marked with a negative label.
//
// Vocabulary layout: C = vocab−6 content tokens [0, C), then one tag token
// per source kind (C+0 markov, C+1 copy, C+2 reverse, C+3 modadd), then SEP
// (C+4) and EQ (C+5). Every example starts with its source's tag:
//
//	markov   an order-2 Markov chain over the content tokens: each context
//	         (a, b) has three successors with probabilities .6, .3, .1
//	copy     L random tokens, SEP, the same L tokens (L = (W−2)/2), SEP-padded
//	reverse  L random tokens, SEP, those tokens reversed
//	modadd   groups a b EQ (a+b mod C), repeated
//
// Examples cycle through the sources in order, so every source has the
// same share; the content is drawn from a PCG stream seeded by the spec's
// seed (the Markov tables from a stream of their own).

// TokenSources are the source kinds in tag order.
var TokenSources = []string{"markov", "copy", "reverse", "modadd"}

const (
	streamTokens = 0x746f6b656e73 // "tokens"
	streamChain  = 0x636861696e   // "chain"
)

func tokenParams(ds schema.Dataset) (n, w, vocab int, sources []string, err error) {
	n, w, vocab, sources = ds.Samples, ds.SeqLen+1, ds.Vocab, ds.Sources
	if n == 0 {
		n = 4096
	}
	if ds.SeqLen == 0 {
		w = 33
	}
	if vocab == 0 {
		vocab = 32
	}
	if len(sources) == 0 {
		sources = TokenSources
	}
	switch {
	case n < 2:
		return 0, 0, 0, nil, fmt.Errorf("tokens: samples must be at least 2, got %d", n)
	case w < 5:
		return 0, 0, 0, nil, fmt.Errorf("tokens: seq_len must be at least 4, got %d", w-1)
	case vocab < 12 || vocab >= 1<<24:
		return 0, 0, 0, nil, fmt.Errorf("tokens: vocab must be in [12, 2^24), got %d", vocab)
	}
	for _, s := range sources {
		if sourceIndex(s) < 0 {
			return 0, 0, 0, nil, fmt.Errorf("tokens: unknown source %q (want markov, copy, reverse or modadd)", s)
		}
	}
	return n, w, vocab, sources, nil
}

func sourceIndex(s string) int {
	for i, k := range TokenSources {
		if k == s {
			return i
		}
	}
	return -1
}

func tokenMeta(ds schema.Dataset) (Info, error) {
	n, w, vocab, _, err := tokenParams(ds)
	if err != nil {
		return Info{}, err
	}
	e, err := evalCount(n, ds.EvalFraction)
	if err != nil {
		return Info{}, fmt.Errorf("tokens: %v", err)
	}
	return Info{Features: w, Classes: vocab, TrainN: n - e, EvalN: e}, nil
}

func loadTokens(ds schema.Dataset) (*Set, error) {
	m, err := tokenMeta(ds)
	if err != nil {
		return nil, err
	}
	n, w, vocab, sources, _ := tokenParams(ds)
	x, y := Tokens(n, w, vocab, sources, uint64(ds.Seed))
	s := &Set{Meta: m}
	if s.Train, s.Eval, err = splitRows(x, y, n, w, ds.EvalFraction, uint64(ds.Seed)); err != nil {
		return nil, fmt.Errorf("tokens: %v", err)
	}
	return s, nil
}

// Tokens generates n examples of w tokens; see the package comment above.
func Tokens(n, w, vocab int, sources []string, seed uint64) ([]float32, []int32) {
	c := vocab - 6
	sep, eq := c+4, c+5
	chain := markovTable(c, seed)
	rng := rand.New(rand.NewPCG(seed, streamTokens))
	x, y := make([]float32, n*w), make([]int32, n)
	row := make([]int, w)
	for i := range n {
		src := i % len(sources)
		kind := sourceIndex(sources[src])
		y[i] = int32(src)
		row[0] = c + kind
		body := row[1:]
		switch TokenSources[kind] {
		case "markov":
			body[0], body[1] = rng.IntN(c), rng.IntN(c)
			for t := 2; t < len(body); t++ {
				succ := chain[(body[t-2]*c+body[t-1])*3:]
				switch u := rng.Float64(); {
				case u < 0.6:
					body[t] = succ[0]
				case u < 0.9:
					body[t] = succ[1]
				default:
					body[t] = succ[2]
				}
			}
		case "copy", "reverse":
			l := (len(body) - 1) / 2
			for t := range body {
				body[t] = sep
			}
			for t := 0; t < l; t++ {
				body[t] = rng.IntN(c)
			}
			for t := 0; t < l; t++ {
				from := t
				if TokenSources[kind] == "reverse" {
					from = l - 1 - t
				}
				body[l+1+t] = body[from]
			}
		case "modadd":
			for t := 0; t < len(body); t += 4 {
				a, b := rng.IntN(c), rng.IntN(c)
				g := []int{a, b, eq, (a + b) % c}
				copy(body[t:], g)
			}
		}
		for t, v := range row {
			x[i*w+t] = float32(v)
		}
	}
	return x, y
}

// markovTable draws three distinct successors for each of the c² contexts.
func markovTable(c int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, streamChain))
	t := make([]int, c*c*3)
	for ctx := 0; ctx < c*c; ctx++ {
		a := rng.IntN(c)
		b := (a + 1 + rng.IntN(c-1)) % c
		d := b
		for d == a || d == b {
			d = rng.IntN(c)
		}
		t[ctx*3], t[ctx*3+1], t[ctx*3+2] = a, b, d
	}
	return t
}

// UnigramNLL is the next-token loss of the best model that ignores context:
// token frequencies of the training split's targets (positions 1..W−1,
// add-½ smoothing over the vocabulary), scored on the evaluation split's
// targets in nats per token. A sequence model that learns anything beats it.
func UnigramNLL(s *Set) float64 {
	w, vocab := s.Meta.Features, s.Meta.Classes
	counts := make([]float64, vocab)
	total := 0.0
	for i := range s.Train.N {
		for t := 1; t < w; t++ {
			counts[int(s.Train.X[i*w+t])]++
			total++
		}
	}
	eval := s.Eval
	if eval.N == 0 {
		eval = s.Train
	}
	var nll float64
	n := 0
	for i := range eval.N {
		for t := 1; t < w; t++ {
			p := (counts[int(eval.X[i*w+t])] + 0.5) / (total + 0.5*float64(vocab))
			nll -= math.Log(p)
			n++
		}
	}
	return nll / float64(n)
}
