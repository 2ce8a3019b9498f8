package rag

import (
	"fmt"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// RecallKs are the cut-offs of a recall report.
var RecallKs = []int{1, 3, 5, 10}

// RecallReport is retrieval quality on a test: for each k, the fraction of questions whose
// source chunk (Question.ChunkID) is among the top k retrieved for the question text.
type RecallReport struct {
	// Questions is how many questions had a ChunkID that exists in the index (the denominator).
	Questions int `json:"questions"`
	// SkippedNoChunk counts questions without a ChunkID (e.g. the imported Perpetual tests).
	SkippedNoChunk int `json:"skipped_no_chunk"`
	// SkippedUnknownChunk counts questions whose ChunkID is not in the index.
	SkippedUnknownChunk int `json:"skipped_unknown_chunk"`
	// Ks are the cut-offs, RecallKs.
	Ks []int `json:"ks"`
	// Hits[i] is how many questions had their chunk in the top Ks[i].
	Hits []int `json:"hits"`
	// Recall[i] is Hits[i] / Questions (0 when Questions is 0).
	Recall []float64 `json:"recall"`
	// MRR is the mean reciprocal rank of the source chunk within the top max(Ks) (0 if absent).
	MRR float64 `json:"mrr"`
}

// Recall retrieves the top max(RecallKs) chunks for every question and reports recall@k.
// known reports whether a chunk id is indexed (questions about other chunks are skipped and
// counted). progress, if not nil, is called after each question.
func Recall(r Retriever, questions []curriculum.Question, known func(id string) bool, progress func()) (RecallReport, error) {
	maxK := 0
	for _, k := range RecallKs {
		maxK = max(maxK, k)
	}
	rep := RecallReport{Ks: append([]int(nil), RecallKs...), Hits: make([]int, len(RecallKs)), Recall: make([]float64, len(RecallKs))}
	var rr float64
	for _, q := range questions {
		if progress != nil {
			progress()
		}
		if q.ChunkID == "" {
			rep.SkippedNoChunk++
			continue
		}
		if known != nil && !known(q.ChunkID) {
			rep.SkippedUnknownChunk++
			continue
		}
		hits, err := r.Retrieve(q.Question, maxK)
		if err != nil {
			return RecallReport{}, fmt.Errorf("rag: question %s: %w", q.ID, err)
		}
		rep.Questions++
		rank := 0
		for i, h := range hits {
			if h.ChunkID == q.ChunkID {
				rank = i + 1
				break
			}
		}
		if rank > 0 {
			rr += 1 / float64(rank)
			for i, k := range rep.Ks {
				if rank <= k {
					rep.Hits[i]++
				}
			}
		}
	}
	if rep.Questions > 0 {
		for i := range rep.Ks {
			rep.Recall[i] = float64(rep.Hits[i]) / float64(rep.Questions)
		}
		rep.MRR = rr / float64(rep.Questions)
	}
	return rep, nil
}
