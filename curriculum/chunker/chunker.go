// Package chunker cuts text into overlapping pieces of about a given size, preferring to cut at
// boundaries the caller ranks (a top-level declaration in code, a paragraph break in prose), then
// at line ends, then at spaces. Sizes are in bytes and cuts never split a UTF-8 character.
//
// Written here rather than taken from a text-splitter library because code needs cut points from a
// real parser (go/parser for Go), which those libraries do not accept.
package chunker

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Boundary is a preferred cut offset with a priority (higher is better).
type Boundary struct {
	Offset   int
	Priority int
}

// Options for Split.
type Options struct {
	// Size is the target maximum chunk size in bytes (default 4096).
	Size int
	// Overlap is how many bytes of the previous chunk the next one repeats (default 512).
	Overlap int
}

func (o *Options) defaults() {
	if o.Size <= 0 {
		o.Size = 4096
	}
	if o.Overlap < 0 || o.Overlap >= o.Size/2 {
		o.Overlap = o.Size / 8
	}
	if o.Overlap == 0 {
		o.Overlap = min(512, o.Size/8)
	}
}

// Split cuts text into chunks of at most opt.Size bytes. A cut goes at the best boundary in the
// second half of the window (highest priority, then latest), else at the last line end, else at
// the last space, else at the size limit. The next chunk starts opt.Overlap bytes before the cut,
// moved forward to the start of a line when there is one in the overlap, so chunks start cleanly.
func Split(text string, bounds []Boundary, opt Options) []string {
	var out []string
	for _, s := range Spans(text, bounds, opt) {
		out = append(out, text[s.Start:s.End])
	}
	return out
}

// Span is a chunk's byte range in the text.
type Span struct{ Start, End int }

// Spans is Split returning byte ranges instead of strings.
func Spans(text string, bounds []Boundary, opt Options) []Span {
	opt.defaults()
	if strings.TrimSpace(text) == "" {
		return nil
	}
	sort.Slice(bounds, func(i, j int) bool { return bounds[i].Offset < bounds[j].Offset })
	var out []Span
	start := 0
	for start < len(text) {
		end := start + opt.Size
		if end >= len(text) {
			if strings.TrimSpace(text[start:]) != "" {
				out = append(out, Span{start, len(text)})
			}
			break
		}
		cut := bestCut(text, bounds, start+opt.Size/2, end)
		if strings.TrimSpace(text[start:cut]) != "" {
			out = append(out, Span{start, cut})
		}
		next := cut - opt.Overlap
		if nl := strings.IndexByte(text[max(next, start):cut], '\n'); nl >= 0 && max(next, start)+nl+1 < cut {
			next = max(next, start) + nl + 1
		}
		next = runeStart(text, next)
		if next <= start {
			next = cut
		}
		start = next
	}
	return out
}

func bestCut(text string, bounds []Boundary, lo, hi int) int {
	best, bestPri := -1, -1
	i := sort.Search(len(bounds), func(i int) bool { return bounds[i].Offset > lo })
	for ; i < len(bounds) && bounds[i].Offset <= hi; i++ {
		if bounds[i].Priority >= bestPri {
			best, bestPri = bounds[i].Offset, bounds[i].Priority
		}
	}
	if best > 0 {
		return best
	}
	if nl := strings.LastIndexByte(text[lo:hi], '\n'); nl >= 0 {
		return lo + nl + 1
	}
	if sp := strings.LastIndexByte(text[lo:hi], ' '); sp >= 0 {
		return lo + sp + 1
	}
	return runeStart(text, hi)
}

// runeStart moves i back to the start of the UTF-8 character containing it.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

// ParagraphBoundaries ranks blank lines (paragraph breaks) 2 and sentence ends followed by a
// space 1, for prose.
func ParagraphBoundaries(text string) []Boundary {
	var b []Boundary
	for i := 0; i+1 < len(text); i++ {
		switch {
		case text[i] == '\n' && text[i+1] == '\n':
			b = append(b, Boundary{i + 2, 2})
		case (text[i] == '.' || text[i] == '?' || text[i] == '!') && text[i+1] == ' ':
			b = append(b, Boundary{i + 2, 1})
		}
	}
	return b
}
