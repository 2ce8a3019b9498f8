package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The normalizers, pre-tokenizers and decoders of tokenizer.json that Perpetual's model families
// use, with the Hugging Face semantics.

type normalizer func(string) string

type preTokenizer func(words []string, first bool) []string

// decoder transforms the list of token strings, as decode_chain does in the Rust library.
type decoder func(tokens []string) []string

// pattern is a Split/Replace pattern: a literal string or a regex.
type pattern struct {
	literal string
	split   func(string) []string // hand-written splitter of a known regex
	re      *regexp.Regexp
}

func newPattern(p *hfPattern) (*pattern, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("missing pattern")
	case p.String != nil:
		if *p.String == "" {
			return nil, fmt.Errorf("empty pattern")
		}
		return &pattern{literal: *p.String}, nil
	case p.Regex != nil:
		switch *p.Regex {
		case gpt2Pattern:
			return &pattern{split: splitGPT2}, nil
		case llama3Pattern:
			return &pattern{split: splitLlama3}, nil
		case qwen2Pattern:
			return &pattern{split: splitQwen2}, nil
		}
		re, err := regexp.Compile(*p.Regex)
		if err != nil {
			return nil, fmt.Errorf("unsupported regex %q: %v", truncate(*p.Regex, 120), err)
		}
		return &pattern{re: re}, nil
	}
	return nil, fmt.Errorf("pattern has neither String nor Regex")
}

// span is a piece of a text and whether it matched the pattern.
type span struct {
	s     string
	match bool
}

// spans cuts s into matched and unmatched pieces covering all of s. Empty matches are dropped.
func (p *pattern) spans(s string) []span {
	var out []span
	add := func(piece string, match bool) {
		if piece != "" {
			out = append(out, span{piece, match})
		}
	}
	switch {
	case p.split != nil:
		for _, piece := range p.split(s) {
			add(piece, true)
		}
	case p.re != nil:
		prev := 0
		for _, loc := range p.re.FindAllStringIndex(s, -1) {
			add(s[prev:loc[0]], false)
			add(s[loc[0]:loc[1]], true)
			prev = loc[1]
		}
		add(s[prev:], false)
	default:
		for {
			i := strings.Index(s, p.literal)
			if i < 0 {
				add(s, false)
				break
			}
			add(s[:i], false)
			add(s[i:i+len(p.literal)], true)
			s = s[i+len(p.literal):]
		}
	}
	return out
}

func (p *pattern) replaceAll(s, with string) string {
	if p.re != nil {
		return p.re.ReplaceAllLiteralString(s, with)
	}
	if p.literal != "" {
		return strings.ReplaceAll(s, p.literal, with)
	}
	var b strings.Builder
	for _, sp := range p.spans(s) {
		if sp.match {
			b.WriteString(with)
		} else {
			b.WriteString(sp.s)
		}
	}
	return b.String()
}

// splitBehavior groups spans into words following SplitDelimiterBehavior.
func splitBehavior(spans []span, behavior string, invert bool) ([]string, error) {
	if invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	var out []string
	switch strings.ToLower(behavior) {
	case "isolated":
		for _, sp := range spans {
			out = append(out, sp.s)
		}
	case "removed":
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp.s)
			}
		}
	case "mergedwithprevious":
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1] += sp.s
			} else {
				out = append(out, sp.s)
			}
			prevMatch = sp.match
		}
	case "mergedwithnext":
		prevMatch := false
		for _, sp := range spans {
			if !sp.match && prevMatch && len(out) > 0 {
				out[len(out)-1] += sp.s
			} else {
				out = append(out, sp.s)
			}
			prevMatch = sp.match
		}
	case "contiguous":
		prevMatch := false
		for _, sp := range spans {
			if sp.match && prevMatch && len(out) > 0 {
				out[len(out)-1] += sp.s
			} else {
				out = append(out, sp.s)
			}
			prevMatch = sp.match
		}
	default:
		return nil, fmt.Errorf("unknown split behavior %q", behavior)
	}
	return out, nil
}

// byteLevel maps bytes to the printable characters GPT-2 uses in its vocabulary.
var byteToRune, runeToByte = func() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := map[rune]byte{}
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

func byteLevelEncode(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteToRune[s[i]])
	}
	return b.String()
}

// byteLevelDecode maps byte-level characters back to bytes; other characters keep their UTF-8.
func byteLevelDecode(s string, buf []byte) []byte {
	for _, r := range s {
		if b, ok := runeToByte[r]; ok {
			buf = append(buf, b)
		} else {
			buf = utf8.AppendRune(buf, r)
		}
	}
	return buf
}

func newNormalizer(c *hfComponent) (normalizer, error) {
	if c == nil {
		return nil, nil
	}
	switch c.Type {
	case "Sequence":
		var seq []normalizer
		for i := range c.Normalizers {
			n, err := newNormalizer(&c.Normalizers[i])
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return func(s string) string {
			for _, n := range seq {
				s = n(s)
			}
			return s
		}, nil
	case "Replace":
		p, err := newPattern(c.Pattern)
		if err != nil {
			return nil, fmt.Errorf("Replace normalizer: %v", err)
		}
		content := c.Content
		return func(s string) string { return p.replaceAll(s, content) }, nil
	case "Prepend":
		prefix := c.Prepend
		return func(s string) string {
			if s == "" {
				return s
			}
			return prefix + s
		}, nil
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Lowercase":
		return strings.ToLower, nil
	case "Strip":
		left, right := c.StripLeft, c.StripRight
		return func(s string) string {
			if left {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if right {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s
		}, nil
	}
	return nil, fmt.Errorf("unsupported normalizer %q", c.Type)
}

func newPreTokenizer(c *hfComponent) (preTokenizer, error) {
	if c == nil {
		return nil, nil
	}
	perWord := func(f func(w string, first bool) []string) preTokenizer {
		return func(words []string, first bool) []string {
			var out []string
			for i, w := range words {
				out = append(out, f(w, first && i == 0)...)
			}
			return out
		}
	}
	switch c.Type {
	case "Sequence":
		var seq []preTokenizer
		for i := range c.Pretokenizers {
			p, err := newPreTokenizer(&c.Pretokenizers[i])
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return func(words []string, first bool) []string {
			for _, p := range seq {
				words = p(words, first)
			}
			return words
		}, nil
	case "ByteLevel":
		addPrefix := c.AddPrefixSpace != nil && *c.AddPrefixSpace
		useRegex := c.UseRegex == nil || *c.UseRegex
		return perWord(func(w string, _ bool) []string {
			if addPrefix && !strings.HasPrefix(w, " ") {
				w = " " + w
			}
			pieces := []string{w}
			if useRegex {
				pieces = splitGPT2(w)
			}
			for i, p := range pieces {
				pieces[i] = byteLevelEncode(p)
			}
			return pieces
		}), nil
	case "Split":
		p, err := newPattern(c.Pattern)
		if err != nil {
			return nil, fmt.Errorf("Split pre-tokenizer: %v", err)
		}
		if _, err := splitBehavior(nil, c.Behavior, false); err != nil {
			return nil, fmt.Errorf("Split pre-tokenizer: %v", err)
		}
		behavior, invert := c.Behavior, c.Invert
		return perWord(func(w string, _ bool) []string {
			out, _ := splitBehavior(p.spans(w), behavior, invert)
			return out
		}), nil
	case "Metaspace":
		repl := c.Replacement
		if repl == "" {
			repl = "▁"
		}
		scheme, err := metaspaceScheme(c)
		if err != nil {
			return nil, fmt.Errorf("Metaspace pre-tokenizer: %v", err)
		}
		split := c.Split == nil || *c.Split
		lit := &pattern{literal: repl}
		return perWord(func(w string, first bool) []string {
			w = strings.ReplaceAll(w, " ", repl)
			if !strings.HasPrefix(w, repl) && (scheme == "always" || (scheme == "first" && first)) {
				w = repl + w
			}
			if !split {
				return []string{w}
			}
			out, _ := splitBehavior(lit.spans(w), "mergedwithnext", false)
			return out
		}), nil
	case "WhitespaceSplit":
		return perWord(func(w string, _ bool) []string { return strings.FieldsFunc(w, unicode.IsSpace) }), nil
	case "Whitespace":
		// \w+|[^\w\s]+ with Unicode \w.
		word := func(r rune) bool {
			return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || unicode.Is(unicode.Pc, r)
		}
		return perWord(func(w string, _ bool) []string {
			var out []string
			start, kind := -1, 0
			for i, r := range w + " " {
				k := 2
				if word(r) {
					k = 1
				} else if unicode.IsSpace(r) || i == len(w) {
					k = 0
				}
				if k != kind {
					if kind != 0 {
						out = append(out, w[start:i])
					}
					start, kind = i, k
				}
			}
			return out
		}), nil
	case "Digits":
		individual := c.IndividualDigits
		return perWord(func(w string, _ bool) []string {
			var out []string
			start := 0
			prevDigit := false
			for i, r := range w {
				d := unicode.IsDigit(r)
				if i > start && (d != prevDigit || (d && individual)) {
					out = append(out, w[start:i])
					start = i
				}
				prevDigit = d
			}
			if start < len(w) {
				out = append(out, w[start:])
			}
			return out
		}), nil
	}
	return nil, fmt.Errorf("unsupported pre-tokenizer %q", c.Type)
}

func newDecoder(c *hfComponent) (decoder, error) {
	if c == nil {
		return nil, nil
	}
	switch c.Type {
	case "Sequence":
		var seq []decoder
		for i := range c.Decoders {
			d, err := newDecoder(&c.Decoders[i])
			if err != nil {
				return nil, err
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return func(tokens []string) []string {
			for _, d := range seq {
				tokens = d(tokens)
			}
			return tokens
		}, nil
	case "Replace":
		p, err := newPattern(c.Pattern)
		if err != nil {
			return nil, fmt.Errorf("Replace decoder: %v", err)
		}
		content := c.Content
		return func(tokens []string) []string {
			for i, t := range tokens {
				tokens[i] = p.replaceAll(t, content)
			}
			return tokens
		}, nil
	case "ByteFallback":
		return decodeByteFallback, nil
	case "Fuse":
		return func(tokens []string) []string { return []string{strings.Join(tokens, "")} }, nil
	case "Strip":
		content, _ := utf8.DecodeRuneInString(c.Content)
		start, stop := c.Start, c.Stop
		return func(tokens []string) []string {
			for i, t := range tokens {
				rs := []rune(t)
				lo, hi := 0, len(rs)
				for lo < start && lo < hi && rs[lo] == content {
					lo++
				}
				for n := 0; n < stop && hi > lo && rs[hi-1] == content; n++ {
					hi--
				}
				tokens[i] = string(rs[lo:hi])
			}
			return tokens
		}, nil
	case "ByteLevel":
		return func(tokens []string) []string {
			var buf []byte
			for _, t := range tokens {
				buf = byteLevelDecode(t, buf)
			}
			return []string{strings.ToValidUTF8(string(buf), "\uFFFD")}
		}, nil
	case "Metaspace":
		repl := c.Replacement
		if repl == "" {
			repl = "▁"
		}
		scheme, err := metaspaceScheme(c)
		if err != nil {
			return nil, fmt.Errorf("Metaspace decoder: %v", err)
		}
		strip := scheme != "never"
		return func(tokens []string) []string {
			for i, t := range tokens {
				t = strings.ReplaceAll(t, repl, " ")
				if i == 0 && strip {
					t = strings.TrimPrefix(t, " ")
				}
				tokens[i] = t
			}
			return tokens
		}, nil
	}
	return nil, fmt.Errorf("unsupported decoder %q", c.Type)
}

// decodeByteFallback turns runs of <0xHH> tokens into their UTF-8 text, or one U+FFFD per byte
// when the run is not valid UTF-8.
func decodeByteFallback(tokens []string) []string {
	var out []string
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	var v byte
	for _, c := range t[3:5] {
		switch {
		case c >= '0' && c <= '9':
			v = v*16 + byte(c-'0')
		case c >= 'A' && c <= 'F':
			v = v*16 + byte(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// metaspaceScheme reads prepend_scheme, or the older add_prefix_space flag.
func metaspaceScheme(c *hfComponent) (string, error) {
	scheme := c.PrependScheme
	if scheme == "" {
		scheme = "always"
		if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
			scheme = "never"
		}
	}
	if scheme != "always" && scheme != "first" && scheme != "never" {
		return "", fmt.Errorf("unknown prepend_scheme %q", scheme)
	}
	return scheme, nil
}
