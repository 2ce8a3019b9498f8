package rag

import (
	"fmt"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Options configure New and Open.
type Options struct {
	// Kind is KindBM25 (default), KindDense or KindHybrid (New only; Open reads meta.json).
	Kind string
	// BM25 parameters (zero value: DefaultBM25Params; New only).
	BM25 *BM25Params
	// Dense settings (dense and hybrid). On Open, ModelDir/Embedder override the recorded folder.
	Dense DenseOptions
}

// New returns an empty index of opts.Kind.
func New(opts Options) (Index, error) {
	p := DefaultBM25Params()
	if opts.BM25 != nil {
		p = *opts.BM25
	}
	switch opts.Kind {
	case "", KindBM25:
		return NewBM25(p)
	case KindDense:
		return NewDense(opts.Dense)
	case KindHybrid:
		return NewHybrid(p, opts.Dense)
	}
	return nil, fmt.Errorf("rag: unknown retriever %q (want bm25, dense or hybrid)", opts.Kind)
}

// Build indexes chunks into a new index of opts.Kind.
func Build(chunks []curriculum.Chunk, opts Options) (Index, error) {
	x, err := New(opts)
	if err != nil {
		return nil, err
	}
	if err := x.Add(chunks...); err != nil {
		return nil, err
	}
	return x, nil
}

// Open reads the index in dir, returning the retriever its meta.json names. A dense or hybrid
// index loads the encoder recorded in meta.json with load (nil is enough for a BM25 index).
func Open(dir string, load EmbedderLoader) (Index, error) {
	return OpenWith(dir, Options{Dense: DenseOptions{Load: load}})
}

// OpenWith is Open with an encoder override (opts.Dense.ModelDir or opts.Dense.Embedder) and an
// optional progress writer; opts.Kind and opts.BM25 are ignored.
func OpenWith(dir string, opts Options) (Index, error) {
	m, err := ReadMeta(dir)
	if err != nil {
		return nil, err
	}
	switch m.Kind {
	case KindBM25:
		return openBM25(dir, m)
	case KindDense:
		return openDense(dir, m, opts.Dense)
	default: // KindHybrid; ReadMeta rejected anything else
		d, err := openDense(dir, m, opts.Dense)
		if err != nil {
			return nil, err
		}
		b, err := NewBM25(*m.BM25)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		if err := b.Add(d.set.chunks...); err != nil {
			return nil, err
		}
		return &Hybrid{BM25: b, Dense: d}, nil
	}
}
