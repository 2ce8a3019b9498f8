package curriculum

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// File names inside a curriculum folder.
const (
	ChunksFile     = "chunks.jsonl"
	TrainFile      = "train.jsonl"
	ValidationFile = "validation.jsonl"
	TestFile       = "test.jsonl"
	ManifestFile   = "manifest.json"
)

// FormatVersion is written to every manifest; Read refuses newer versions it does not understand.
const FormatVersion = 1

// Manifest describes how a curriculum was made and what it holds.
type Manifest struct {
	// Format is FormatVersion at writing time.
	Format int `json:"format"`
	// Source is the knowledge-base kind ("code", "papers", "products", "synthetic", "perpetual").
	Source string `json:"source"`
	// Inputs are the paths or generator names the curriculum was built from.
	Inputs []string `json:"inputs,omitempty"`
	// Teacher is who wrote the questions ("offline", "llm:<model>", "perpetual", "synthetic").
	Teacher string `json:"teacher"`
	// Seed drove every random choice (splits, letter shuffles, distractors).
	Seed int64 `json:"seed"`
	// Options are the build settings, for reproduction.
	Options map[string]string `json:"options,omitempty"`
	// Counts are filled in by Write.
	Counts Counts `json:"counts"`
	// Files maps each file name to its SHA-256 and line count; filled in by Write, checked by Read.
	Files map[string]FileInfo `json:"files"`
	// Skipped lists inputs that were left out and why (unreadable PDF, bad record, ...).
	Skipped []Skipped `json:"skipped,omitempty"`
	// MissingFacts lists the chunks the teacher wrote no facts for, in a build that accepted a
	// partial result (perpetual curriculum build --allow-partial): their documents are in the
	// curriculum, questions on them are not.
	MissingFacts []ChunkFailure `json:"missing_facts,omitempty"`
	// Notes are facts the builder detected and wants reported (e.g. stripped choice prefixes).
	Notes []string `json:"notes,omitempty"`
	// Usage is the LLM teacher's accounting (nil for offline teachers).
	Usage *Usage `json:"usage,omitempty"`
}

// Counts summarises a curriculum.
type Counts struct {
	Chunks           int `json:"chunks"`
	TrainDocs        int `json:"train_docs"`
	TrainQnA         int `json:"train_qna"`
	Validation       int `json:"validation"`
	Test             int `json:"test"`
	TestSeen         int `json:"test_seen"`
	TestDocumentOnly int `json:"test_document_only"`
	TestUnknown      int `json:"test_unknown"`
}

// FileInfo identifies a file's content.
type FileInfo struct {
	SHA256 string `json:"sha256"`
	Lines  int    `json:"lines"`
}

// Skipped is one input left out of the curriculum.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// ChunkFailure is a chunk a teacher wrote no facts for, and why.
type ChunkFailure struct {
	ChunkID string `json:"chunk_id"`
	Reason  string `json:"reason"`
}

// Usage is the token and cost accounting of an LLM teacher.
type Usage struct {
	Requests  int `json:"requests"`
	CacheHits int `json:"cache_hits"`
	Retries   int `json:"retries"`
	// Reasks counts chunks asked again because the reply was invalid.
	Reasks           int            `json:"reasks,omitempty"`
	PromptTokens     int            `json:"prompt_tokens"`
	CompletionTokens int            `json:"completion_tokens"`
	CostUSD          float64        `json:"cost_usd"`
	Rejected         map[string]int `json:"rejected,omitempty"`
}

// ComputeCounts counts the records of c.
func (c *Curriculum) ComputeCounts() Counts {
	n := Counts{Chunks: len(c.Chunks), Validation: len(c.Validation), Test: len(c.Test)}
	for _, it := range c.Train {
		if it.Type == TypeDoc {
			n.TrainDocs++
		} else {
			n.TrainQnA++
		}
	}
	for _, q := range c.Test {
		switch q.Kind {
		case KindSeen:
			n.TestSeen++
		case KindDocumentOnly:
			n.TestDocumentOnly++
		default:
			n.TestUnknown++
		}
	}
	return n
}

// Write validates c and writes it to dir atomically: everything goes to a temporary sibling
// folder which then replaces dir. Counts and file hashes in the manifest are filled in (c.Manifest
// is updated too).
func Write(dir string, c *Curriculum) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("curriculum for %s: %w", dir, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	// A writer killed mid-way leaves its temporary folder behind: clear those first.
	if stale, _ := filepath.Glob(filepath.Join(parent, "."+filepath.Base(dir)+".tmp-*")); len(stale) > 0 {
		for _, s := range stale {
			os.RemoveAll(s)
		}
	}
	tmp, err := atomicfile.TempDir(parent, filepath.Base(dir))
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	m := c.Manifest
	m.Format = FormatVersion
	m.Counts = c.ComputeCounts()
	m.Files = map[string]FileInfo{}
	for _, f := range []struct {
		name string
		n    int
		rec  func(i int) any
	}{
		{ChunksFile, len(c.Chunks), func(i int) any { return &c.Chunks[i] }},
		{TrainFile, len(c.Train), func(i int) any { return &c.Train[i] }},
		{ValidationFile, len(c.Validation), func(i int) any { return &c.Validation[i] }},
		{TestFile, len(c.Test), func(i int) any { return &c.Test[i] }},
	} {
		info, err := writeJSONL(filepath.Join(tmp, f.name), f.n, f.rec)
		if err != nil {
			return err
		}
		m.Files[f.name] = info
	}
	mb, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, ManifestFile), append(mb, '\n'), 0o644); err != nil {
		return err
	}
	// Swap: the old folder moves aside so the new one appears in a single rename.
	if err := atomicfile.ReplaceDir(tmp, dir); err != nil {
		return err
	}
	ok = true
	c.Manifest = m
	return nil
}

func writeJSONL(path string, n int, rec func(i int) any) (FileInfo, error) {
	f, err := os.Create(path)
	if err != nil {
		return FileInfo{}, err
	}
	h := sha256.New()
	w := bufio.NewWriter(io.MultiWriter(f, h))
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := 0; i < n; i++ {
		if err := enc.Encode(rec(i)); err != nil {
			f.Close()
			return FileInfo{}, fmt.Errorf("%s: record %d: %w", path, i, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return FileInfo{}, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return FileInfo{}, err
	}
	if err := f.Close(); err != nil {
		return FileInfo{}, err
	}
	return FileInfo{SHA256: hex.EncodeToString(h.Sum(nil)), Lines: n}, nil
}

// Read loads and validates the curriculum in dir. Errors name the file and, for a bad record, the
// line. A file whose SHA-256 differs from the manifest is reported as modified.
func Read(dir string) (*Curriculum, error) {
	mpath := filepath.Join(dir, ManifestFile)
	mb, err := os.ReadFile(mpath)
	if err != nil {
		return nil, fmt.Errorf("reading curriculum: %w", err)
	}
	c := &Curriculum{}
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c.Manifest); err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	if c.Manifest.Format < 1 || c.Manifest.Format > FormatVersion {
		return nil, fmt.Errorf("%s: format %d not supported (this build reads 1..%d)", mpath, c.Manifest.Format, FormatVersion)
	}
	load := func(name string, add func(dec *json.Decoder) error) error {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) && name == ValidationFile {
			return nil // optional
		}
		if err != nil {
			return fmt.Errorf("reading curriculum: %w", err)
		}
		if want, ok := c.Manifest.Files[name]; ok && want.SHA256 != "" {
			sum := sha256.Sum256(data)
			if got := hex.EncodeToString(sum[:]); got != want.SHA256 {
				return fmt.Errorf("%s: sha256 %s differs from the manifest's %s (file modified or truncated)", path, got[:12], want.SHA256[:min(12, len(want.SHA256))])
			}
		}
		line := 0
		for len(data) > 0 {
			line++
			var l []byte
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				l, data = data[:i], data[i+1:]
			} else {
				l, data = data, nil
			}
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			d := json.NewDecoder(bytes.NewReader(l))
			d.DisallowUnknownFields()
			if err := add(d); err != nil {
				return fmt.Errorf("%s:%d: %w", path, line, err)
			}
		}
		return nil
	}
	err = load(ChunksFile, func(d *json.Decoder) error {
		var ch Chunk
		if err := d.Decode(&ch); err != nil {
			return err
		}
		if ch.ID == "" || ch.Text == "" {
			return fmt.Errorf("chunk needs a non-empty id and text")
		}
		c.Chunks = append(c.Chunks, ch)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		dst  *[]Item
	}{{TrainFile, &c.Train}, {ValidationFile, &c.Validation}} {
		dst := f.dst
		err = load(f.name, func(d *json.Decoder) error {
			var it Item
			if err := d.Decode(&it); err != nil {
				return err
			}
			if err := it.Validate(); err != nil {
				return err
			}
			*dst = append(*dst, it)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	err = load(TestFile, func(d *json.Decoder) error {
		var q Question
		if err := d.Decode(&q); err != nil {
			return err
		}
		if err := q.Validate(); err != nil {
			return err
		}
		c.Test = append(c.Test, q)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return c, nil
}

// SortSkipped orders skipped inputs by path so manifests are reproducible.
func SortSkipped(s []Skipped) {
	sort.SliceStable(s, func(i, j int) bool { return s[i].Path < s[j].Path })
}
