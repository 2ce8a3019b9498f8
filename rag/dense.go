package rag

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/schollz/progressbar/v3"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Embedder turns texts into L2-normalised vectors (models/bert.Encoder is one).
type Embedder interface {
	// Embed returns one vector of length Dim per text.
	Embed(texts []string) ([][]float32, error)
	// Dim is the vector length.
	Dim() int
	// MaxLength is the token limit; longer texts are truncated by the encoder.
	MaxLength() int
}

// HashedEmbedder is an Embedder that can identify itself (models/bert.Encoder is one). A dense
// index records the hash and refuses to be queried by a different encoder.
type HashedEmbedder interface {
	Embedder
	// Hash changes whenever the vectors the encoder makes could change.
	Hash() string
}

func embedderHash(e Embedder) string {
	if h, ok := e.(HashedEmbedder); ok {
		return h.Hash()
	}
	return ""
}

// EmbedderLoader loads the encoder of a Hugging Face folder: models/bert's Load, handed in by
// the caller (the CLI, the harness's Options.Embedders, a test), so rag itself never imports
// GoMLX.
type EmbedderLoader func(modelDir string) (Embedder, error)

// DenseOptions configure a dense index.
type DenseOptions struct {
	// ModelDir is the encoder's Hugging Face folder (recorded in meta.json as an absolute path).
	ModelDir string
	// Embedder, if set, is used instead of loading ModelDir.
	Embedder Embedder
	// Load loads ModelDir's encoder when Embedder is not given.
	Load EmbedderLoader
	// QueryPrefix is prepended to queries (BGE v1.5 suggests "Represent this sentence for
	// searching relevant passages: "; empty by default, as the paper's Chroma setup used none).
	QueryPrefix string
	// BatchSize is how many chunks are encoded per forward pass (default 16).
	BatchSize int
	// Progress, if not nil, receives a progress bar while chunks are encoded.
	Progress io.Writer
}

// Dense retrieves by cosine similarity of encoder embeddings.
type Dense struct {
	set   chunkSet
	opts  DenseOptions
	emb   Embedder
	store *FlatStore
}

// NewDense returns an empty dense index, loading the encoder from opts.ModelDir unless
// opts.Embedder is given.
func NewDense(opts DenseOptions) (*Dense, error) {
	if opts.ModelDir != "" {
		abs, err := filepath.Abs(opts.ModelDir)
		if err != nil {
			return nil, fmt.Errorf("rag: %w", err)
		}
		opts.ModelDir = abs
	}
	emb := opts.Embedder
	if emb == nil {
		if opts.ModelDir == "" {
			return nil, fmt.Errorf("rag: a dense index needs an encoder folder (--model)")
		}
		if opts.Load == nil {
			return nil, fmt.Errorf("rag: a dense index needs an encoder loader (DenseOptions.Load; the CLI passes models/bert's)")
		}
		var err error
		if emb, err = opts.Load(opts.ModelDir); err != nil {
			return nil, err
		}
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 16
	}
	store, err := NewFlatStore(emb.Dim())
	if err != nil {
		return nil, err
	}
	return &Dense{opts: opts, emb: emb, store: store}, nil
}

// Kind is KindDense.
func (d *Dense) Kind() string { return KindDense }

// Len is the number of chunks.
func (d *Dense) Len() int { return len(d.set.chunks) }

// Chunks returns the indexed chunks in insertion order.
func (d *Dense) Chunks() []curriculum.Chunk { return d.set.chunks }

// Store returns the vector store.
func (d *Dense) Store() VectorStore { return d.store }

// Add encodes and stores chunks (PassageText of each), in batches, with a progress bar if
// DenseOptions.Progress is set.
func (d *Dense) Add(chunks ...curriculum.Chunk) error {
	var probe chunkSet
	probe.byID = map[string]int{}
	for id, i := range d.set.byID {
		probe.byID[id] = i
	}
	if err := probe.add(chunks); err != nil {
		return err
	}
	var bar *progressbar.ProgressBar
	if d.opts.Progress != nil {
		bar = progressbar.NewOptions(len(chunks), progressbar.OptionSetWriter(d.opts.Progress),
			progressbar.OptionSetDescription("encoding chunks"), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionOnCompletion(func() { fmt.Fprintln(d.opts.Progress) }))
		_ = bar.RenderBlank() // start the clock now, not at the first update (rates and ETA)
	}
	for start := 0; start < len(chunks); start += d.opts.BatchSize {
		end := min(start+d.opts.BatchSize, len(chunks))
		texts := make([]string, 0, end-start)
		ids := make([]string, 0, end-start)
		for _, c := range chunks[start:end] {
			texts = append(texts, PassageText(c))
			ids = append(ids, c.ID)
		}
		vecs, err := d.emb.Embed(texts)
		if err != nil {
			return fmt.Errorf("rag: encoding chunks %s..%s: %w", ids[0], ids[len(ids)-1], err)
		}
		if err := d.store.Add(ids, vecs); err != nil {
			return err
		}
		if err := d.set.add(chunks[start:end]); err != nil {
			return err
		}
		if bar != nil {
			_ = bar.Add(end - start)
		}
	}
	return nil
}

// QueryVector encodes a query (with QueryPrefix).
func (d *Dense) QueryVector(query string) ([]float32, error) {
	v, err := d.emb.Embed([]string{d.opts.QueryPrefix + query})
	if err != nil {
		return nil, fmt.Errorf("rag: encoding query: %w", err)
	}
	return v[0], nil
}

// Retrieve returns the k chunks whose embeddings are most similar to the query's.
func (d *Dense) Retrieve(query string, k int) ([]Hit, error) {
	if err := checkK(k); err != nil {
		return nil, err
	}
	if d.store.Len() == 0 {
		return nil, nil
	}
	q, err := d.QueryVector(query)
	if err != nil {
		return nil, err
	}
	vh, err := d.store.Search(q, k)
	if err != nil {
		return nil, err
	}
	ranked := make([]scored, len(vh))
	for i, h := range vh {
		ranked[i] = scored{doc: d.set.byID[h.ID], score: h.Score}
	}
	return d.set.hits(ranked), nil
}

func (d *Dense) meta() *DenseMeta {
	return &DenseMeta{ModelDir: d.opts.ModelDir, QueryPrefix: d.opts.QueryPrefix, Dim: d.emb.Dim(),
		MaxLength: d.emb.MaxLength(), Store: "flat", EncoderHash: embedderHash(d.emb)}
}

// Save writes meta.json, chunks.jsonl and vectors.bin to dir atomically.
func (d *Dense) Save(dir string) error {
	return writeDirAtomic(dir, func(tmp string) error {
		if err := writeMetaAndChunks(tmp, Meta{Kind: KindDense, Dense: d.meta()}, d.set.chunks); err != nil {
			return err
		}
		return d.store.WriteFile(filepath.Join(tmp, VectorsFile))
	})
}

// openDense reads a dense index; opts.Embedder or opts.ModelDir override the recorded folder.
func openDense(dir string, m Meta, opts DenseOptions) (*Dense, error) {
	chunks, err := readChunks(dir, m.Chunks)
	if err != nil {
		return nil, err
	}
	store, err := ReadFlatStore(filepath.Join(dir, VectorsFile))
	if err != nil {
		return nil, err
	}
	if store.Len() != len(chunks) || store.Dim() != m.Dense.Dim {
		return nil, fmt.Errorf("rag: %s: %s holds %d vectors of dimension %d, meta.json says %d chunks of dimension %d",
			dir, VectorsFile, store.Len(), store.Dim(), len(chunks), m.Dense.Dim)
	}
	for i, c := range chunks {
		if store.ids[i] != c.ID {
			return nil, fmt.Errorf("rag: %s: vector %d is for chunk %q but chunk %d is %q", dir, i, store.ids[i], i, c.ID)
		}
	}
	if opts.ModelDir == "" {
		opts.ModelDir = m.Dense.ModelDir
	}
	opts.QueryPrefix = m.Dense.QueryPrefix
	d, err := NewDense(opts)
	if err != nil {
		return nil, fmt.Errorf("rag: %s: %w", dir, err)
	}
	if d.emb.Dim() != m.Dense.Dim {
		return nil, fmt.Errorf("rag: %s: encoder %s makes %d-d vectors, the index holds %d-d", dir, opts.ModelDir, d.emb.Dim(), m.Dense.Dim)
	}
	if got := embedderHash(d.emb); m.Dense.EncoderHash != "" && got != "" && got != m.Dense.EncoderHash {
		return nil, fmt.Errorf("rag: %s: the index was built with encoder %.12s but %s now holds encoder %.12s; rebuild it with `perpetual rag index`",
			dir, m.Dense.EncoderHash, opts.ModelDir, got)
	}
	d.store = store
	if err := d.set.add(chunks); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return d, nil
}
