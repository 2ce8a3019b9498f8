package rag

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/curriculum"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// Files of an index directory.
const (
	MetaFile    = "meta.json"
	ChunksFile  = "chunks.jsonl"
	VectorsFile = "vectors.bin"
)

// FormatVersion is the index directory format this build writes and reads.
const FormatVersion = 1

// Meta is an index's meta.json.
type Meta struct {
	// Format is FormatVersion.
	Format int `json:"format"`
	// Kind is the retriever: KindBM25, KindDense or KindHybrid.
	Kind string `json:"kind"`
	// Chunks is the number of chunks in chunks.jsonl.
	Chunks int `json:"chunks"`
	// BM25 holds the BM25 parameters (bm25 and hybrid).
	BM25 *BM25Params `json:"bm25,omitempty"`
	// Dense holds the encoder description (dense and hybrid).
	Dense *DenseMeta `json:"dense,omitempty"`
	// RRFK is the reciprocal-rank-fusion constant (hybrid).
	RRFK int `json:"rrf_k,omitempty"`
}

// DenseMeta describes how a dense index's vectors were made, so queries are encoded the same way.
type DenseMeta struct {
	// ModelDir is the absolute path of the encoder's Hugging Face folder.
	ModelDir string `json:"model_dir"`
	// QueryPrefix is prepended to queries before encoding (BGE's retrieval instruction, or "").
	QueryPrefix string `json:"query_prefix"`
	// Dim is the embedding size.
	Dim int `json:"dim"`
	// MaxLength is the token limit chunks were truncated to when encoded.
	MaxLength int `json:"max_length"`
	// Store names the vector store ("flat").
	Store string `json:"store"`
	// EncoderHash identifies the encoder the chunks were embedded with (empty if the encoder
	// cannot say); Open refuses a different one.
	EncoderHash string `json:"encoder_hash,omitempty"`
}

// writeDirAtomic builds a directory with fill in a temporary sibling, then renames it to dir,
// replacing what was there. A crash leaves either the old index or the new one, plus at most a
// stray temporary folder, never a half-written index at dir.
func writeDirAtomic(dir string, fill func(tmp string) error) error {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	tmp, err := atomicfile.TempDir(parent, filepath.Base(dir))
	if err != nil {
		return fmt.Errorf("rag: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		return err
	}
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("rag: %s exists and is not a directory", dir)
		}
		if _, err := os.Stat(filepath.Join(dir, MetaFile)); err != nil {
			if ents, _ := os.ReadDir(dir); len(ents) > 0 {
				return fmt.Errorf("rag: %s exists, is not empty and is not an index; refusing to replace it", dir)
			}
		}
	}
	if err := atomicfile.ReplaceDir(tmp, dir); err != nil {
		return fmt.Errorf("rag: %w", err)
	}
	return nil
}

// writeFileSync writes data to path and fsyncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("rag: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("rag: %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("rag: %s: %w", path, err)
	}
	return f.Close()
}

func writeMetaAndChunks(tmp string, meta Meta, chunks []curriculum.Chunk) error {
	meta.Format = FormatVersion
	meta.Chunks = len(chunks)
	mb, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("rag: %w", err)
	}
	if err := writeFileSync(filepath.Join(tmp, MetaFile), append(mb, '\n')); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, c := range chunks {
		if err := enc.Encode(c); err != nil {
			return fmt.Errorf("rag: %w", err)
		}
	}
	return writeFileSync(filepath.Join(tmp, ChunksFile), buf.Bytes())
}

// ReadMeta reads dir/meta.json and checks its format and kind.
func ReadMeta(dir string) (Meta, error) {
	path := filepath.Join(dir, MetaFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Meta{}, fmt.Errorf("rag: %s: not an index (no %s)", dir, MetaFile)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("rag: %w", err)
	}
	var m Meta
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Meta{}, fmt.Errorf("rag: %s: %w", path, err)
	}
	if m.Format != FormatVersion {
		return Meta{}, fmt.Errorf("rag: %s: format %d not supported (this build reads %d)", path, m.Format, FormatVersion)
	}
	switch m.Kind {
	case KindBM25:
		if m.BM25 == nil {
			return Meta{}, fmt.Errorf("rag: %s: kind bm25 without bm25 parameters", path)
		}
	case KindDense:
		if m.Dense == nil {
			return Meta{}, fmt.Errorf("rag: %s: kind dense without dense settings", path)
		}
	case KindHybrid:
		if m.BM25 == nil || m.Dense == nil || m.RRFK <= 0 {
			return Meta{}, fmt.Errorf("rag: %s: kind hybrid needs bm25, dense and a positive rrf_k", path)
		}
	default:
		return Meta{}, fmt.Errorf("rag: %s: unknown retriever kind %q (want bm25, dense or hybrid)", path, m.Kind)
	}
	return m, nil
}

// readChunks reads dir/chunks.jsonl, naming the line of a bad record, and checks the count
// against meta.
func readChunks(dir string, want int) ([]curriculum.Chunk, error) {
	path := filepath.Join(dir, ChunksFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rag: %w", err)
	}
	defer f.Close()
	var out []curriculum.Chunk
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var c curriculum.Chunk
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.DisallowUnknownFields()
		if err := d.Decode(&c); err != nil {
			return nil, fmt.Errorf("rag: %s:%d: %w", path, line, err)
		}
		if c.ID == "" {
			return nil, fmt.Errorf("rag: %s:%d: chunk without an id", path, line)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("rag: %s: %w", path, err)
	}
	if len(out) != want {
		return nil, fmt.Errorf("rag: %s: %d chunks, meta.json says %d (truncated or modified)", path, len(out), want)
	}
	return out, nil
}
