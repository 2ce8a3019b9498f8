package rag

import "sort"

// RRFK is the reciprocal-rank-fusion constant: a chunk at 1-based rank r in a list contributes
// 1/(RRFK + r) (Cormack, Clarke and Buettcher 2009 use 60).
const RRFK = 60

// FuseRRF merges ranked lists by reciprocal rank fusion with constant k (RRFK when k <= 0):
// score(c) = sum over lists containing c of 1/(k + rank). Chunks missing from a list get
// nothing from it. Ties are broken by the best rank the chunk had in any list, then by the
// order of the lists, so the result is deterministic. Text comes from the first list holding the
// chunk. The result is cut to limit (all when limit <= 0) and re-ranked from 1.
func FuseRRF(k, limit int, lists ...[]Hit) []Hit {
	if k <= 0 {
		k = RRFK
	}
	type acc struct {
		hit      Hit
		score    float64
		bestRank int
		first    int // position of first sighting, for ties
	}
	byID := map[string]*acc{}
	var order []*acc
	for _, list := range lists {
		for i, h := range list {
			rank := i + 1
			a := byID[h.ChunkID]
			if a == nil {
				a = &acc{hit: h, bestRank: rank, first: len(order)}
				byID[h.ChunkID] = a
				order = append(order, a)
			}
			a.score += 1 / float64(k+rank)
			if rank < a.bestRank {
				a.bestRank = rank
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.score != b.score {
			return a.score > b.score
		}
		if a.bestRank != b.bestRank {
			return a.bestRank < b.bestRank
		}
		return a.first < b.first
	})
	if limit > 0 && limit < len(order) {
		order = order[:limit]
	}
	out := make([]Hit, len(order))
	for i, a := range order {
		out[i] = Hit{ChunkID: a.hit.ChunkID, Text: a.hit.Text, Score: a.score, Rank: i + 1}
	}
	return out
}
