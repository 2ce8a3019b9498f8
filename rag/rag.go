// Package rag is Perpetual's retrieval: it indexes a knowledge base's chunks
// (curriculum.Chunk), retrieves the top k for a question, prepends them to the prompt (as the
// paper did; the exact layout is Augment's), and measures recall@k of the chunk a question was
// generated from.
//
// Retrievers:
//   - BM25 (kind "bm25", the embedded default, no model needed): Okapi BM25 with k1=1.2 and
//     b=0.75 over the analyser in Tokenize.
//   - Dense (kind "dense"): a BGE-style BERT encoder (models/bert, CLS pooling, L2-normalised)
//     with exact inner-product search in a VectorStore; the default store, FlatStore, is our own
//     file-backed exact search.
//   - Hybrid (kind "hybrid"): BM25 and dense fused by reciprocal rank fusion with k=60.
//
// An index is a directory (meta.json, chunks.jsonl and the retriever's files) written
// atomically; meta.json records the retriever kind so Open returns the right Retriever.
//
// Why our own vector store rather than chromem-go: a knowledge base here is a few thousand
// chunks, where exact search is fast (one pass of dot products) and exactly reproducible;
// chromem-go would add its own embedding-function plumbing, gob files and goroutine-parallel
// scoring whose tie order we do not control. VectorStore is the seam where a server store
// (PostgreSQL + pgvector) can be added for knowledge bases that outgrow one machine.
package rag

import (
	"fmt"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Retriever kinds recorded in an index's meta.json.
const (
	KindBM25   = "bm25"
	KindDense  = "dense"
	KindHybrid = "hybrid"
)

// Hit is one retrieved chunk.
type Hit struct {
	// ChunkID is curriculum.Chunk.ID.
	ChunkID string
	// Text is the passage as it goes into a prompt (see PassageText).
	Text string
	// Score is the retriever's relevance score, higher is better (BM25 score, cosine similarity
	// or fused RRF score depending on the retriever).
	Score float64
	// Rank is the 1-based position in the result list.
	Rank int
}

// Retriever returns the k chunks most relevant to a query, best first. Fewer than k come back
// when the index holds fewer chunks, or (BM25) when fewer chunks share a term with the query.
type Retriever interface {
	Retrieve(query string, k int) ([]Hit, error)
}

// Index is a retriever that can grow and be saved. Open reads a saved one back.
type Index interface {
	Retriever
	// Kind is KindBM25, KindDense or KindHybrid.
	Kind() string
	// Add indexes chunks. Chunk IDs must be unique within the index.
	Add(chunks ...curriculum.Chunk) error
	// Len is the number of indexed chunks.
	Len() int
	// Chunks returns the indexed chunks in insertion order (do not modify).
	Chunks() []curriculum.Chunk
	// Save writes the index to dir atomically (a reader never sees a half-written index);
	// an existing index at dir is replaced.
	Save(dir string) error
}

// PassageText is the text of a chunk as indexed and as prepended to a prompt: the title on its
// own line, then the text, unless the text already starts with the title (curriculum sources
// that fold the title into the text, as the paper's product documents do).
func PassageText(c curriculum.Chunk) string {
	title := strings.TrimSpace(c.Title)
	if title == "" || strings.HasPrefix(strings.TrimSpace(c.Text), title) {
		return c.Text
	}
	return title + "\n" + c.Text
}

// chunkSet holds the chunks of an index with unique IDs.
type chunkSet struct {
	chunks []curriculum.Chunk
	byID   map[string]int
}

func (s *chunkSet) add(chunks []curriculum.Chunk) error {
	if s.byID == nil {
		s.byID = map[string]int{}
	}
	seen := map[string]bool{}
	for i, c := range chunks {
		if c.ID == "" {
			return fmt.Errorf("rag: chunk %d has an empty id", i)
		}
		if _, dup := s.byID[c.ID]; dup || seen[c.ID] {
			return fmt.Errorf("rag: duplicate chunk id %q", c.ID)
		}
		seen[c.ID] = true
	}
	for _, c := range chunks {
		s.byID[c.ID] = len(s.chunks)
		s.chunks = append(s.chunks, c)
	}
	return nil
}

// scored is a chunk index with a score, for ranking.
type scored struct {
	doc   int
	score float64
}

// topK sorts by score descending, ties by insertion order (so results are deterministic), and
// keeps k.
func topK(all []scored, k int) []scored {
	sort.Slice(all, func(i, j int) bool {
		if all[i].score != all[j].score {
			return all[i].score > all[j].score
		}
		return all[i].doc < all[j].doc
	})
	if k < len(all) {
		all = all[:k]
	}
	return all
}

func (s *chunkSet) hits(ranked []scored) []Hit {
	out := make([]Hit, len(ranked))
	for i, r := range ranked {
		c := s.chunks[r.doc]
		out[i] = Hit{ChunkID: c.ID, Text: PassageText(c), Score: r.score, Rank: i + 1}
	}
	return out
}

func checkK(k int) error {
	if k <= 0 {
		return fmt.Errorf("rag: k must be positive, got %d", k)
	}
	return nil
}
