package zoo

import (
	"fmt"
	"math/rand/v2"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/training"
)

// ReachPoint is a model's in-context lookup accuracy at one distance: copy drills (a span of
// reachSpan tokens repeated after Distance random tokens) or recall drills (Distance key/value
// pairs, then reachQueries of their keys).
type ReachPoint struct {
	Drill    string  `json:"drill"` // "copy" or "recall"
	Distance int     `json:"distance"`
	Accuracy float64 `json:"accuracy"` // share of targets that are the model's most likely token
	Targets  int     `json:"targets"`
}

const (
	reachSpan    = 8
	reachQueries = 8
)

// ReachGaps and ReachPairs are the distances LookupReach measures by default: from within the
// short drills' range to a RAG passage's distance.
var (
	ReachGaps  = []int{0, 16, 64, 128, 256, 400}
	ReachPairs = []int{8, 16, 32, 64, 128}
)

// LookupReach measures how far back m's in-context lookup reaches, with n drills per point drawn
// (seeded) from the tokens past the zoo's specials and bytes (any model's merged vocabulary).
// A model whose lookup was learned on short drills only copies at short distances: this is the
// measurement behind drill_reach (docs/zoo.md, "Reach").
func LookupReach(m *lm.Model, gaps, pairs []int, n int, seed uint64) ([]ReachPoint, error) {
	first := int32(len(specialTokens) + 256)
	vocabSize := int32(m.Arch().VocabSize())
	maxPairs := 0
	for _, p := range pairs {
		maxPairs = max(maxPairs, p)
	}
	if vocabSize-first < int32(max(reachSpan, maxPairs)+1) {
		return nil, fmt.Errorf("zoo: lookup reach needs more than %d tokens past id %d, the model has %d", max(reachSpan, maxPairs), first, vocabSize)
	}
	vocab := make([]int32, 0, vocabSize-first)
	for id := first; id < vocabSize; id++ {
		vocab = append(vocab, id)
	}
	if n < 1 {
		return nil, fmt.Errorf("zoo: lookup reach needs at least one drill per point, got %d", n)
	}
	rng := rand.New(rand.NewPCG(seed, 0x4eac))
	var out []ReachPoint
	measure := func(kind string, dist int, exs []training.Example) error {
		for _, ex := range exs {
			if len(ex.IDs) > m.Arch().MaxLength() {
				return fmt.Errorf("zoo: a %s drill at distance %d has %d tokens, over the model's window of %d", kind, dist, len(ex.IDs), m.Arch().MaxLength())
			}
		}
		acc, err := drillAccuracy(m, exs)
		if err != nil {
			return err
		}
		targets := 0
		for _, ex := range exs {
			for _, t := range ex.Train {
				if t {
					targets++
				}
			}
		}
		out = append(out, ReachPoint{Drill: kind, Distance: dist, Accuracy: acc, Targets: targets})
		return nil
	}
	for _, gap := range gaps {
		exs := make([]training.Example, n)
		for i := range exs {
			exs[i] = gapCopyDrill(vocab, gap, rng)
		}
		if err := measure("copy", gap, exs); err != nil {
			return nil, err
		}
	}
	for _, p := range pairs {
		exs := make([]training.Example, n)
		for i := range exs {
			exs[i] = pairsRecallDrill(vocab, p, rng)
		}
		if err := measure("recall", p, exs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// gapCopyDrill is reachSpan random tokens, gap random tokens, then the span again (targets: the
// repeat after its first token).
func gapCopyDrill(vocab []int32, gap int, rng *rand.Rand) training.Example {
	span := randomTokens(vocab, reachSpan, rng)
	return copyExample("copy", nil, span, randomTokens(vocab, gap, rng))
}

// pairsRecallDrill is n key/value pairs of distinct keys, then reachQueries (at most n) of the
// keys, each followed by its value (the target).
func pairsRecallDrill(vocab []int32, n int, rng *rand.Rand) training.Example {
	keys := pick(vocab, rng.Perm(len(vocab))[:n])
	vals := randomTokens(vocab, n, rng)
	return recallExample("recall", keys, vals, nil, rng.Perm(n)[:min(n, reachQueries)])
}
