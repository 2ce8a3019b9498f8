package rag

import (
	"fmt"
	"math"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// BM25Params are the Okapi BM25 settings.
type BM25Params struct {
	// K1 saturates term frequency (default 1.2).
	K1 float64 `json:"k1"`
	// B is the document-length normalisation (default 0.75).
	B float64 `json:"b"`
	// Stopwords drops the English stopwords in Stopwords from chunks and queries.
	Stopwords bool `json:"stopwords"`
	// Tokenizer names the analyser (TokenizerName).
	Tokenizer string `json:"tokenizer"`
}

// DefaultBM25Params are k1=1.2, b=0.75, stopwords removed.
func DefaultBM25Params() BM25Params {
	return BM25Params{K1: 1.2, B: 0.75, Stopwords: true, Tokenizer: TokenizerName}
}

// BM25 is an in-memory Okapi BM25 index over PassageText of each chunk.
//
// Score of chunk d for query q, summed over the distinct terms t of q (a term repeated in the
// query counts once):
//
//	idf(t) * tf(t,d) * (k1+1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))
//	idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))
//
// with N chunks, n(t) chunks containing t, |d| the token count of d and avgdl the mean token
// count (Lucene's non-negative idf). Only chunks sharing a term with the query are returned;
// ties are broken by insertion order.
type BM25 struct {
	params   BM25Params
	set      chunkSet
	docLen   []int
	totalLen int
	postings map[string][]posting
}

type posting struct {
	doc, tf int
}

// NewBM25 returns an empty BM25 index. Zero K1/B/Tokenizer take the defaults; other values
// are checked.
func NewBM25(p BM25Params) (*BM25, error) {
	if p.Tokenizer == "" {
		p.Tokenizer = TokenizerName
	}
	if p.Tokenizer != TokenizerName {
		return nil, fmt.Errorf("rag: bm25 tokenizer %q is not supported (this build has %q)", p.Tokenizer, TokenizerName)
	}
	if p.K1 == 0 && p.B == 0 {
		d := DefaultBM25Params()
		p.K1, p.B = d.K1, d.B
	}
	if p.K1 < 0 || math.IsNaN(p.K1) || p.B < 0 || p.B > 1 || math.IsNaN(p.B) {
		return nil, fmt.Errorf("rag: bm25 needs k1 >= 0 and 0 <= b <= 1, got k1=%g b=%g", p.K1, p.B)
	}
	return &BM25{params: p, postings: map[string][]posting{}}, nil
}

// Kind is KindBM25.
func (x *BM25) Kind() string { return KindBM25 }

// Params returns the index's parameters.
func (x *BM25) Params() BM25Params { return x.params }

// Len is the number of chunks.
func (x *BM25) Len() int { return len(x.set.chunks) }

// Chunks returns the indexed chunks in insertion order.
func (x *BM25) Chunks() []curriculum.Chunk { return x.set.chunks }

// Add indexes chunks.
func (x *BM25) Add(chunks ...curriculum.Chunk) error {
	first := len(x.set.chunks)
	if err := x.set.add(chunks); err != nil {
		return err
	}
	for i, c := range chunks {
		doc := first + i
		toks := Tokenize(PassageText(c), x.params.Stopwords)
		tf := map[string]int{}
		var order []string
		for _, t := range toks {
			if tf[t] == 0 {
				order = append(order, t)
			}
			tf[t]++
		}
		for _, t := range order {
			x.postings[t] = append(x.postings[t], posting{doc: doc, tf: tf[t]})
		}
		x.docLen = append(x.docLen, len(toks))
		x.totalLen += len(toks)
	}
	return nil
}

// Scores returns the BM25 score of every chunk for query, in insertion order.
func (x *BM25) Scores(query string) []float64 {
	scores := make([]float64, len(x.set.chunks))
	x.accumulate(query, func(doc int, s float64) { scores[doc] += s })
	return scores
}

func (x *BM25) accumulate(query string, add func(doc int, s float64)) {
	n := len(x.set.chunks)
	if n == 0 || x.totalLen == 0 {
		return
	}
	avgdl := float64(x.totalLen) / float64(n)
	seen := map[string]bool{}
	for _, t := range Tokenize(query, x.params.Stopwords) {
		if seen[t] {
			continue
		}
		seen[t] = true
		ps := x.postings[t]
		if len(ps) == 0 {
			continue
		}
		df := float64(len(ps))
		idf := math.Log(1 + (float64(n)-df+0.5)/(df+0.5))
		for _, p := range ps {
			tf := float64(p.tf)
			norm := x.params.K1 * (1 - x.params.B + x.params.B*float64(x.docLen[p.doc])/avgdl)
			add(p.doc, idf*tf*(x.params.K1+1)/(tf+norm))
		}
	}
}

// Retrieve returns the k best chunks for query.
func (x *BM25) Retrieve(query string, k int) ([]Hit, error) {
	if err := checkK(k); err != nil {
		return nil, err
	}
	return x.set.hits(x.rank(query, k)), nil
}

func (x *BM25) rank(query string, k int) []scored {
	acc := map[int]float64{}
	x.accumulate(query, func(doc int, s float64) { acc[doc] += s })
	all := make([]scored, 0, len(acc))
	for d, s := range acc {
		all = append(all, scored{doc: d, score: s})
	}
	return topK(all, k)
}

// Save writes meta.json and chunks.jsonl to dir atomically. The postings are rebuilt from the
// chunks on Open: for a few thousand chunks that takes milliseconds and keeps one source of truth.
func (x *BM25) Save(dir string) error {
	p := x.params
	return writeDirAtomic(dir, func(tmp string) error {
		return writeMetaAndChunks(tmp, Meta{Kind: KindBM25, BM25: &p}, x.set.chunks)
	})
}

func openBM25(dir string, m Meta) (*BM25, error) {
	chunks, err := readChunks(dir, m.Chunks)
	if err != nil {
		return nil, err
	}
	x, err := NewBM25(*m.BM25)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := x.Add(chunks...); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return x, nil
}
