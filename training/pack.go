package training

import (
	"fmt"
	"math"
)

// Row is one training sequence: several packed items (or one, padded). Segment 0 is padding.
type Row struct {
	Tokens, Positions, Segments []int32
	// Targets[t] is the token predicted at position t (the next token of the same item) and
	// Weights[t] its weight in the loss (1, or the example's Weights, where it is a target; 0
	// elsewhere).
	Targets []int32
	Weights []float32
	// NumTargets is the number of target positions.
	NumTargets int
}

// windows cuts a document longer than maxLen into consecutive windows of at most maxLen tokens
// that overlap by one token, so every target is predicted exactly once.
func windows(ex Example, maxLen int) []Example {
	if len(ex.IDs) <= maxLen {
		return []Example{ex}
	}
	var out []Example
	for start := 0; start < len(ex.IDs)-1; start += maxLen - 1 {
		end := min(start+maxLen, len(ex.IDs))
		train := append([]bool(nil), ex.Train[start:end]...)
		train[0] = false // predicted by the previous window
		w := Example{Name: fmt.Sprintf("%s window %d", ex.Name, len(out)), IDs: ex.IDs[start:end], Train: train}
		if ex.Weights != nil {
			w.Weights = ex.Weights[start:end]
		}
		out = append(out, w)
		if end == len(ex.IDs) {
			break
		}
	}
	return out
}

// Pack lays examples into rows of length maxLen. With packing, consecutive items share a row
// (each its own segment, positions restarting at 0) while they fit; without, each item gets a
// row of its own. Documents longer than maxLen are split into windows; a flashcard that does not
// fit is an error naming it.
func Pack(examples []Example, maxLen int, packing bool) ([]Row, error) {
	if maxLen < 2 {
		return nil, fmt.Errorf("max length %d is too short", maxLen)
	}
	var rows []Row
	var cur *Row
	seg := int32(0)
	newRow := func() {
		rows = append(rows, Row{})
		cur = &rows[len(rows)-1]
		seg = 0
	}
	for _, ex := range examples {
		if err := ex.checkWeights(); err != nil {
			return nil, err
		}
		if len(ex.IDs) > maxLen && !ex.Splittable {
			return nil, fmt.Errorf("%s: %d tokens do not fit the maximum length %d (flashcards are never split; raise --max-length or shorten it)", ex.Name, len(ex.IDs), maxLen)
		}
		for _, w := range windows(ex, maxLen) {
			if cur == nil || !packing || len(cur.Tokens)+len(w.IDs) > maxLen {
				newRow()
			}
			seg++
			for i, id := range w.IDs {
				cur.Tokens = append(cur.Tokens, id)
				cur.Positions = append(cur.Positions, int32(i))
				cur.Segments = append(cur.Segments, seg)
				if i+1 < len(w.IDs) {
					cur.Targets = append(cur.Targets, w.IDs[i+1])
					if w.Train[i+1] {
						weight := float32(1)
						if w.Weights != nil {
							weight = w.Weights[i+1]
						}
						cur.Weights = append(cur.Weights, weight)
						cur.NumTargets++
					} else {
						cur.Weights = append(cur.Weights, 0)
					}
				} else {
					cur.Targets = append(cur.Targets, 0)
					cur.Weights = append(cur.Weights, 0)
				}
			}
		}
	}
	return rows, nil
}

// checkWeights refuses per-token weights that do not match the tokens or are not finite and
// non-negative.
func (ex *Example) checkWeights() error {
	if ex.Weights == nil {
		return nil
	}
	if len(ex.Weights) != len(ex.IDs) {
		return fmt.Errorf("%s: %d loss weights for %d tokens (one per token, or none)", ex.Name, len(ex.Weights), len(ex.IDs))
	}
	for i, w := range ex.Weights {
		if !(w >= 0) || math.IsInf(float64(w), 0) {
			return fmt.Errorf("%s: loss weight %v at token %d (weights must be finite and >= 0)", ex.Name, w, i)
		}
	}
	return nil
}

// Batch is B rows padded to T tokens, flattened row-major, ready for the step graphs.
type Batch struct {
	B, T                                 int
	Tokens, Positions, Segments, Targets []int32
	Weights                              []float32
	NumTargets                           int
}

// MakeBatch pads rows (missing rows are all padding) to B x T.
func MakeBatch(rows []Row, B, T int) Batch {
	b := Batch{B: B, T: T,
		Tokens: make([]int32, B*T), Positions: make([]int32, B*T), Segments: make([]int32, B*T),
		Targets: make([]int32, B*T), Weights: make([]float32, B*T)}
	for r, row := range rows {
		o := r * T
		copy(b.Tokens[o:], row.Tokens)
		copy(b.Positions[o:], row.Positions)
		copy(b.Segments[o:], row.Segments)
		copy(b.Targets[o:], row.Targets)
		copy(b.Weights[o:], row.Weights)
		b.NumTargets += row.NumTargets
	}
	return b
}
