// Package papers turns research papers into knowledge-base chunks: PDF (text extracted with
// github.com/ledongthuc/pdf, a pure-Go reader, so no Poppler or cgo is needed), plain text and
// Markdown, cut into chunks of about 4,096 bytes with 512 bytes of overlap at paragraph breaks.
//
// PDF layout is rebuilt from glyph positions: pieces on one baseline form a line, a horizontal
// gap wider than a fraction of the font size becomes a space, and a vertical gap clearly larger
// than the usual line spacing becomes a paragraph break. Pages that yield no text (scans,
// figures) are reported, and a file that cannot be read at all is skipped with the reason.
package papers

import (
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/ledongthuc/pdf"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/chunker"
)

// Options control loading.
type Options struct {
	// ChunkSize and Overlap in bytes (defaults 4096 and 512).
	ChunkSize, Overlap int
	// OnFile, if set, is called after each file (progress reporting).
	OnFile func(path string)
}

// Result is what Load found.
type Result struct {
	Chunks []curriculum.Chunk
	// Files is the number of documents chunked.
	Files int
	// Skipped are files left out, with the reason.
	Skipped []curriculum.Skipped
	// EmptyPages lists, per PDF, the 1-based pages that yielded no text.
	EmptyPages map[string][]int
}

// Exts are the file types Load reads.
var Exts = map[string]bool{".pdf": true, ".txt": true, ".md": true, ".markdown": true}

// Load reads the given files and folders (folders recursively, files with Exts only, sorted).
func Load(paths []string, opt Options) (*Result, error) {
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = 4096
	}
	if opt.Overlap <= 0 {
		opt.Overlap = 512
	}
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("papers source: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && Exts[strings.ToLower(filepath.Ext(q))] {
				files = append(files, q)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	res := &Result{EmptyPages: map[string][]int{}}
	for _, f := range files {
		text, title, empty, err := ReadDocument(f)
		if len(empty) > 0 {
			res.EmptyPages[f] = empty
			res.Skipped = append(res.Skipped, curriculum.Skipped{Path: f, Reason: fmt.Sprintf("pages without text: %v", empty)})
		}
		switch {
		case err != nil:
			res.Skipped = append(res.Skipped, curriculum.Skipped{Path: f, Reason: strings.TrimPrefix(err.Error(), f+": ")})
		case strings.TrimSpace(text) == "":
			res.Skipped = append(res.Skipped, curriculum.Skipped{Path: f, Reason: "no text"})
		default:
			res.Files++
			for i, piece := range chunker.Split(text, Boundaries(text), chunker.Options{Size: opt.ChunkSize, Overlap: opt.Overlap}) {
				res.Chunks = append(res.Chunks, curriculum.Chunk{ID: fmt.Sprintf("%s#%d", filepath.Base(f), i), Source: f, Title: title, Text: piece})
			}
		}
		if opt.OnFile != nil {
			opt.OnFile(f)
		}
	}
	// Two files with the same base name in different folders: make IDs unique with the path.
	seen := map[string]int{}
	for _, c := range res.Chunks {
		seen[c.ID]++
	}
	for i, c := range res.Chunks {
		if seen[c.ID] > 1 {
			res.Chunks[i].ID = c.Source + c.ID[strings.LastIndexByte(c.ID, '#'):]
		}
	}
	return res, nil
}

var mdHeading = regexp.MustCompile(`(?m)^#{1,6} `)

// Boundaries ranks Markdown headings 3, paragraph breaks 2 and sentence ends 1.
func Boundaries(text string) []chunker.Boundary {
	b := chunker.ParagraphBoundaries(text)
	for _, m := range mdHeading.FindAllStringIndex(text, -1) {
		b = append(b, chunker.Boundary{Offset: m[0], Priority: 3})
	}
	return b
}

// ReadDocument returns a document's text, a title (first non-empty line, or the Markdown "# "
// heading), and for PDFs the 1-based pages without text.
func ReadDocument(path string) (text, title string, emptyPages []int, err error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".pdf":
		pages, err := PDFPages(path)
		if err != nil {
			return "", "", nil, err
		}
		var b strings.Builder
		for i, p := range pages {
			if strings.TrimSpace(p) == "" {
				emptyPages = append(emptyPages, i+1)
				continue
			}
			if b.Len() > 0 {
				b.WriteString("\n\n")
			}
			b.WriteString(p)
		}
		text = b.String()
	default:
		data, err := os.ReadFile(path)
		if err != nil {
			return "", "", nil, err
		}
		text = strings.ReplaceAll(string(data), "\r\n", "\n")
	}
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(strings.TrimLeft(line, "#")); line != "" {
			title = line
			break
		}
	}
	return text, title, emptyPages, nil
}

// PDFPages extracts the text of every page. A file the library cannot parse is an error naming
// the file; the library's panics on malformed input are turned into errors. Pages are decoded in
// parallel (one reader per worker over the file's bytes), since content decoding dominates.
func PDFPages(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	open := func() (r *pdf.Reader, err error) {
		defer func() {
			if p := recover(); p != nil {
				r, err = nil, fmt.Errorf("%v", p)
			}
		}()
		return pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	}
	r, err := open()
	if err != nil {
		return nil, fmt.Errorf("%s: unreadable PDF: %w", path, err)
	}
	n := r.NumPage()
	pages := make([]string, n)
	workers := min(runtime.GOMAXPROCS(0), max(1, n))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					errs[w] = fmt.Errorf("%v", p)
				}
			}()
			rw, err := open()
			if err != nil {
				errs[w] = err
				return
			}
			for i := w + 1; i <= n; i += workers {
				p := rw.Page(i)
				if p.V.IsNull() {
					continue
				}
				pages[i-1] = layout(p.Content().Text)
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s: unreadable PDF: %w", path, err)
		}
	}
	return pages, nil
}

// layout joins glyphs, in content-stream order, into lines (a new line when the baseline moves
// by more than half the font size) and lines into paragraphs (a vertical gap 1.4x the usual line
// spacing). When the PDF gives glyph widths, a horizontal gap wider than 15% of the font size
// becomes a space.
func layout(glyphs []pdf.Text) string {
	type line struct {
		y    float64
		text strings.Builder
	}
	var lines []*line
	var cur *line
	prevEnd, prevY := math.Inf(-1), math.NaN()
	for _, t := range glyphs {
		if t.S == "" {
			continue
		}
		// The reader emits "\n" at the end of every text object, also mid-line (a font change
		// for one word): lines come from the baselines instead, so these only mark a gap.
		if strings.TrimSpace(t.S) == "" && strings.ContainsAny(t.S, "\r\n") {
			if cur != nil && !strings.HasSuffix(cur.text.String(), " ") && t.X > prevEnd {
				prevEnd = t.X
			}
			continue
		}
		size := t.FontSize
		if size <= 0 {
			size = 10
		}
		if cur == nil || math.Abs(t.Y-prevY) > 0.5*size {
			cur = &line{y: t.Y}
			lines = append(lines, cur)
			prevEnd = math.Inf(-1)
		} else if t.W > 0 && t.X-prevEnd > 0.15*size {
			if s := cur.text.String(); !strings.HasSuffix(s, " ") && !strings.HasPrefix(t.S, " ") {
				cur.text.WriteByte(' ')
			}
		}
		cur.text.WriteString(t.S)
		prevY = t.Y
		if t.W > 0 {
			prevEnd = t.X + t.W
		}
	}
	var kept []*line
	for _, l := range lines {
		if strings.TrimSpace(l.text.String()) != "" {
			kept = append(kept, l)
		}
	}
	if len(kept) == 0 {
		return ""
	}
	// The usual line spacing is the lower quartile of the downward gaps (headings and paragraph
	// breaks are the larger ones); a gap 1.4x larger starts a paragraph.
	var gaps []float64
	for i := 1; i < len(kept); i++ {
		if g := kept[i-1].y - kept[i].y; g > 0 {
			gaps = append(gaps, g)
		}
	}
	sort.Float64s(gaps)
	median := 0.0
	if len(gaps) > 0 {
		median = gaps[len(gaps)/4]
	}
	var b strings.Builder
	for i, l := range kept {
		if i > 0 {
			if g := kept[i-1].y - l.y; median > 0 && (g > 1.4*median || g < 0) {
				b.WriteString("\n\n")
			} else {
				b.WriteByte('\n')
			}
		}
		b.WriteString(strings.TrimSpace(l.text.String()))
	}
	return b.String()
}
