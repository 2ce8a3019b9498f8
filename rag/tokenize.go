package rag

import (
	"strings"
	"unicode"
)

// Tokenize is the BM25 analyser: it lowercases text (Unicode simple case folding via
// strings.ToLower) and splits it into maximal runs of Unicode letters and digits (categories L
// and N); every other rune separates tokens. With dropStopwords, the English stopwords in
// Stopwords are removed. The same function analyses chunks and queries, so a stored index stays
// valid only with the same rule: the index records the rule's name (TokenizerName).
func Tokenize(text string, dropStopwords bool) []string {
	var out []string
	start := -1
	lower := strings.ToLower(text)
	flush := func(end int) {
		if start < 0 {
			return
		}
		tok := lower[start:end]
		start = -1
		if dropStopwords && Stopwords[tok] {
			return
		}
		out = append(out, tok)
	}
	for i, r := range lower {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.N, r) {
			if start < 0 {
				start = i
			}
			continue
		}
		flush(i)
	}
	flush(len(lower))
	return out
}

// TokenizerName names the analyser Tokenize implements; stored indexes record it.
const TokenizerName = "lower-unicode-alnum-v1"

// Stopwords is a small English stopword list (the classic Lucene/Snowball core set): words so
// frequent that they carry little evidence of relevance.
var Stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an and are as at be but by for if in into is it no not of on or such
		that the their then there these they this to was will with what which who whom how when where why
		does do did has have had i you he she we its our your from than so can`) {
		m[w] = true
	}
	return m
}()
