package papers

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"

	"github.com/ledongthuc/pdf"
)

func TestPDFPages(t *testing.T) {
	pages, err := PDFPages("testdata/paper.pdf")
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 3 || strings.TrimSpace(pages[1]) != "" {
		t.Fatalf("pages: %q", pages)
	}
	for _, want := range []string{
		"Tidal Forecasting with Sparse Mixtures\n\nIlsa Morvane, University of Quelmar\n\nAbstract. We introduce TideMix",
		"4.2 centimetres on the Harbour-12 dataset,\nimproving",
		"in 2031.\n\n1. Introduction\n\nTides at the port",
	} {
		if !strings.Contains(pages[0], want) {
			t.Errorf("page 1 lacks %q:\n%s", want, pages[0])
		}
	}
	if !strings.Contains(pages[2], "Marek Duval, reached 5.1 centimetres.") {
		t.Errorf("page 3: %s", pages[2])
	}
}

func TestLoadMixedFolder(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"paper.pdf", "broken.pdf", "notes.md"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "ignored.bin"), []byte{0, 1, 2}, 0o644)
	os.WriteFile(filepath.Join(dir, "empty.txt"), []byte(" \n"), 0o644)
	long := strings.Repeat("Sentence about harbours and tides. ", 300) // ~10 KB of prose
	os.WriteFile(filepath.Join(dir, "long.txt"), []byte(long), 0o644)
	n := 0
	res, err := Load([]string{dir}, Options{OnFile: func(string) { n++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 3 || n != 5 {
		t.Fatalf("%d files read, %d callbacks; skipped %+v", res.Files, n, res.Skipped)
	}
	reasons := map[string]string{}
	for _, s := range res.Skipped {
		reasons[filepath.Base(s.Path)] += s.Reason + ";"
	}
	if !strings.Contains(reasons["broken.pdf"], "unreadable PDF") || !strings.Contains(reasons["empty.txt"], "no text") ||
		!strings.Contains(reasons["paper.pdf"], "pages without text: [2]") {
		t.Errorf("skip reasons %v", reasons)
	}
	if got := res.EmptyPages[filepath.Join(dir, "paper.pdf")]; len(got) != 1 || got[0] != 2 {
		t.Errorf("empty pages %v", res.EmptyPages)
	}
	byFile := map[string]int{}
	for _, c := range res.Chunks {
		byFile[filepath.Base(c.Source)]++
		if len(c.Text) > 4096 {
			t.Errorf("%s: %d bytes", c.ID, len(c.Text))
		}
	}
	if byFile["long.txt"] < 3 || byFile["paper.pdf"] != 1 || byFile["notes.md"] != 1 {
		t.Errorf("chunks per file %v", byFile)
	}
	for _, c := range res.Chunks {
		if c.Source == filepath.Join(dir, "notes.md") && c.Title != "Harbour Notes" {
			t.Errorf("markdown title %q", c.Title)
		}
		if c.Source == filepath.Join(dir, "paper.pdf") && c.Title != "Tidal Forecasting with Sparse Mixtures" {
			t.Errorf("pdf title %q", c.Title)
		}
	}
	if _, err := Load([]string{filepath.Join(dir, "missing")}, Options{}); err == nil {
		t.Error("missing path accepted")
	}
}

// A real typeset manual from Debian (bzip2's, pdfTeX with several fonts on a line), when the
// package's documentation is installed: words set in another font stay on their line.
func TestRealManualPage(t *testing.T) {
	gz, err := os.Open("/usr/share/doc/bzip2/manual.pdf.gz")
	if err != nil {
		testenv.Require(t, "bzip2's manual (Debian package bzip2-doc)", err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(zr)
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	text := layout(r.Page(2).Content().Text)
	for _, want := range []string{
		"This program, bzip2, the associated library libbzip2, and all documentation, are copyright",
		"Version 1.0.8 of 13 July 2019",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page 2 lacks %q:\n%s", want, text[:min(len(text), 800)])
		}
	}
}
