package rag

import (
	"path/filepath"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// HybridDepth is how many results each retriever contributes to the fusion (at least k).
const HybridDepth = 100

// Hybrid fuses BM25 and dense rankings by reciprocal rank fusion (RRFK = 60): each retriever
// returns its top max(k, HybridDepth), and FuseRRF keeps the best k. Scores are RRF scores.
type Hybrid struct {
	BM25  *BM25
	Dense *Dense
}

// NewHybrid returns an empty hybrid index.
func NewHybrid(p BM25Params, opts DenseOptions) (*Hybrid, error) {
	b, err := NewBM25(p)
	if err != nil {
		return nil, err
	}
	d, err := NewDense(opts)
	if err != nil {
		return nil, err
	}
	return &Hybrid{BM25: b, Dense: d}, nil
}

// Kind is KindHybrid.
func (h *Hybrid) Kind() string { return KindHybrid }

// Len is the number of chunks.
func (h *Hybrid) Len() int { return h.BM25.Len() }

// Chunks returns the indexed chunks in insertion order.
func (h *Hybrid) Chunks() []curriculum.Chunk { return h.BM25.Chunks() }

// Add indexes chunks in both retrievers.
func (h *Hybrid) Add(chunks ...curriculum.Chunk) error {
	if err := h.Dense.Add(chunks...); err != nil {
		return err
	}
	return h.BM25.Add(chunks...)
}

// Retrieve fuses the two rankings.
func (h *Hybrid) Retrieve(query string, k int) ([]Hit, error) {
	if err := checkK(k); err != nil {
		return nil, err
	}
	depth := max(k, HybridDepth)
	a, err := h.BM25.Retrieve(query, depth)
	if err != nil {
		return nil, err
	}
	b, err := h.Dense.Retrieve(query, depth)
	if err != nil {
		return nil, err
	}
	return FuseRRF(RRFK, k, a, b), nil
}

// Save writes both retrievers' files into one directory atomically.
func (h *Hybrid) Save(dir string) error {
	p := h.BM25.params
	return writeDirAtomic(dir, func(tmp string) error {
		m := Meta{Kind: KindHybrid, BM25: &p, Dense: h.Dense.meta(), RRFK: RRFK}
		if err := writeMetaAndChunks(tmp, m, h.BM25.set.chunks); err != nil {
			return err
		}
		return h.Dense.store.WriteFile(filepath.Join(tmp, VectorsFile))
	})
}
