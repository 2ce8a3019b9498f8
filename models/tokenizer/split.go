package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The pre-tokenizer regexes of GPT-2 and Llama-3 use a lookahead (\s+(?!\S)) that Go's regexp
// cannot express, so they are matched here by hand. Both patterns match at every position (each
// character is a letter, a number, whitespace or "other"), so a text splits into contiguous
// pieces; each function below returns where the piece starting at i ends, trying the
// alternatives in the order the regex lists them, with the regex's backtracking worked out.
//
// \s is Unicode White_Space (as in Rust's regex engines, which the reference libraries follow),
// \p{L} and \p{N} are Unicode letters and numbers. Invalid UTF-8 bytes count as "other"
// characters of width one, so splitting never loses bytes.

// Known pattern strings, exactly as tokenizer.json files spell them.
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// text is a string decoded once into characters with their byte offsets.
type text struct {
	s     string
	runes []rune // utf8.RuneError for an invalid byte
	off   []int  // byte offset of each rune; off[len(runes)] == len(s)
}

func newText(s string) text {
	t := text{s: s, runes: make([]rune, 0, len(s)), off: make([]int, 0, len(s)+1)}
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		t.runes = append(t.runes, r)
		t.off = append(t.off, i)
		i += w
	}
	t.off = append(t.off, len(s))
	return t
}

func isSpace(r rune) bool  { return unicode.IsSpace(r) }
func isLetter(r rune) bool { return unicode.IsLetter(r) }
func isNumber(r rune) bool { return unicode.IsNumber(r) }
func isOther(r rune) bool  { return !isSpace(r) && !isLetter(r) && !isNumber(r) }

// splitWith cuts s into the pieces found by at, which returns the end (in runes) of the piece
// starting at rune i.
func splitWith(s string, at func(rs []rune, i int) int) []string {
	t := newText(s)
	var out []string
	for i := 0; i < len(t.runes); {
		e := at(t.runes, i)
		if e <= i { // never happens for the known patterns; guards against an endless loop
			e = i + 1
		}
		out = append(out, s[t.off[i]:t.off[e]])
		i = e
	}
	return out
}

// contraction matches 's 't 're 've 'm 'll 'd at i (ASCII case-insensitive if fold).
func contraction(rs []rune, i int, fold bool) int {
	if rs[i] != '\'' || i+1 >= len(rs) {
		return 0
	}
	lower := func(r rune) rune {
		if fold && r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	a := lower(rs[i+1])
	switch a {
	case 's', 't', 'm', 'd':
		return i + 2
	}
	if i+2 < len(rs) {
		b := lower(rs[i+2])
		if (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l') {
			return i + 3
		}
	}
	return 0
}

// run returns the end of the run of characters satisfying f starting at i.
func run(rs []rune, i int, f func(rune) bool) int {
	for i < len(rs) && f(rs[i]) {
		i++
	}
	return i
}

// whitespaceTail matches \s+(?!\S)|\s+ at i (rs[i] is whitespace).
func whitespaceTail(rs []rune, i int) int {
	e := run(rs, i, isSpace)
	if e == len(rs) || e-1 == i {
		return e
	}
	return e - 1 // leave the last space to join the next word
}

// gpt2At matches the GPT-2 pattern at i.
func gpt2At(rs []rune, i int) int {
	if e := contraction(rs, i, false); e > 0 {
		return e
	}
	j := i
	if rs[j] == ' ' && j+1 < len(rs) {
		j++
	}
	for _, class := range []func(rune) bool{isLetter, isNumber, isOther} {
		if class(rs[j]) {
			return run(rs, j, class)
		}
	}
	return whitespaceTail(rs, i)
}

// cl100kAt matches the Llama-3 pattern at i; maxDigits is 3 for Llama-3 (\p{N}{1,3}) and 1 for
// Qwen-2 (\p{N}).
func cl100kAt(rs []rune, i int, maxDigits int) int {
	n := len(rs)
	if e := contraction(rs, i, true); e > 0 {
		return e
	}
	r := rs[i]
	if isLetter(r) {
		return run(rs, i, isLetter)
	}
	if r != '\r' && r != '\n' && !isNumber(r) && i+1 < n && isLetter(rs[i+1]) {
		return run(rs, i+1, isLetter)
	}
	if isNumber(r) {
		e := i
		for e < n && e-i < maxDigits && isNumber(rs[e]) {
			e++
		}
		return e
	}
	j := i
	if r == ' ' && j+1 < n && isOther(rs[j+1]) {
		j++
	}
	if isOther(rs[j]) {
		e := run(rs, j, isOther)
		return run(rs, e, func(r rune) bool { return r == '\r' || r == '\n' })
	}
	// rs[i] is whitespace: \s*[\r\n]+ ends after the last line break of the run, if any.
	e := run(rs, i, isSpace)
	for p := e - 1; p >= i; p-- {
		if rs[p] == '\r' || rs[p] == '\n' {
			return p + 1
		}
	}
	return whitespaceTail(rs, i)
}

func splitGPT2(s string) []string { return splitWith(s, gpt2At) }

func splitLlama3(s string) []string {
	return splitWith(s, func(rs []rune, i int) int { return cl100kAt(rs, i, 3) })
}

func splitQwen2(s string) []string {
	return splitWith(s, func(rs []rune, i int) int { return cl100kAt(rs, i, 1) })
}
