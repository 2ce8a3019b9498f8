package chunker

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// checkCover verifies that chunks are in order, each within the size limit, start on character
// boundaries, and together cover every non-space byte of text.
func checkCover(t *testing.T, text string, bounds []Boundary, opt Options) []string {
	t.Helper()
	spans := Spans(text, bounds, opt)
	covered := 0
	for i, s := range spans {
		if s.End-s.Start > opt.Size {
			t.Fatalf("chunk %d has %d bytes > %d", i, s.End-s.Start, opt.Size)
		}
		if utf8.ValidString(text) && !utf8.ValidString(text[s.Start:s.End]) {
			t.Fatalf("chunk %d splits a character", i)
		}
		if i > 0 && s.Start <= spans[i-1].Start {
			t.Fatalf("chunk %d does not advance", i)
		}
		if s.Start > covered && strings.TrimSpace(text[covered:s.Start]) != "" {
			t.Fatalf("gap before chunk %d: %q", i, text[covered:s.Start])
		}
		covered = max(covered, s.End)
	}
	if strings.TrimSpace(text[covered:]) != "" {
		t.Fatalf("tail not covered: %q", text[covered:])
	}
	return Split(text, bounds, opt)
}

func TestSplitProse(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 200; i++ {
		b.WriteString("The quick brown fox jumps over the lazy dog number ")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString(". ")
		if i%9 == 8 {
			b.WriteString("\n\n")
		}
	}
	text := b.String()
	chunks := checkCover(t, text, ParagraphBoundaries(text), Options{Size: 1000, Overlap: 100})
	if len(chunks) < 10 {
		t.Fatalf("%d chunks", len(chunks))
	}
	for i, c := range chunks[:len(chunks)-1] {
		// Cuts land at paragraph breaks when one is in the second half of the window.
		if !strings.HasSuffix(c, "\n\n") {
			t.Errorf("chunk %d does not end at a paragraph: %q", i, c[len(c)-20:])
		}
	}
}

func TestSplitPrefersHigherPriority(t *testing.T) {
	text := strings.Repeat("a", 60) + "\n" + strings.Repeat("b", 20) + "\n" + strings.Repeat("c", 50)
	// Boundary of priority 5 at 61 wins over the later line end at 82.
	chunks := checkCover(t, text, []Boundary{{61, 5}}, Options{Size: 100, Overlap: 10})
	if len(chunks) < 2 || chunks[0] != text[:61] {
		t.Fatalf("first chunk %q", chunks[0])
	}
}

func TestSplitSmallAndEmpty(t *testing.T) {
	if c := Split("  \n ", nil, Options{}); c != nil {
		t.Fatalf("blank text gave %q", c)
	}
	if c := Split("short", nil, Options{}); len(c) != 1 || c[0] != "short" {
		t.Fatalf("%q", c)
	}
	long := strings.Repeat("é", 3000) // no spaces or newlines: hard cuts on character boundaries
	checkCover(t, long, nil, Options{Size: 1001, Overlap: 101})
}

func FuzzSplit(f *testing.F) {
	f.Add("hello world\n\nthis is a test. Another sentence here.", 16, 4)
	f.Fuzz(func(t *testing.T, text string, size, overlap int) {
		if size < 8 || size > 5000 || overlap < 0 {
			return
		}
		checkCover(t, text, ParagraphBoundaries(text), Options{Size: size, Overlap: overlap})
	})
}
