package lmtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Golden is the content of a fixture's golden.json, written by the family's independent
// reference (models/<family>/testdata/make_golden.py).
type Golden struct {
	// Sequences are token ids, one list per sequence: at least two, of at least two tokens and
	// different lengths. The suite packs them all into one row, so their total length plus 3
	// must fit the model's MaxLength.
	Sequences [][]int32 `json:"sequences"`
	// Logits are, per sequence run alone (batch 1, no padding), the float32 next-token logits
	// [T, V] flattened row by row.
	Logits [][]float64 `json:"logits"`
	// LogitsBF16 (optional) are the same computed by the reference in bfloat16 (weights and
	// activations); when absent, bfloat16 compute is compared with Logits.
	LogitsBF16 [][]float64 `json:"logits_bf16,omitempty"`
	// WeightsDType is the dtype the checkpoint stores ("float32", "bfloat16", ...).
	WeightsDType string `json:"weights_dtype"`
	// Loss is a training-style loss and its gradients.
	Loss GoldenLoss `json:"loss"`
}

// GoldenLoss is a masked mean next-token cross-entropy of one row and its gradients:
// -sum_t Weights[t] * log_softmax(logits(Tokens)[t])[Targets[t]] / sum_t Weights[t], with
// positions 0..T-1 and one segment.
type GoldenLoss struct {
	// Tokens is the input row.
	Tokens []int32 `json:"tokens"`
	// Targets are the next tokens to predict, one per input position.
	Targets []int32 `json:"targets"`
	// Weights count a position (1) or not (0).
	Weights []float32 `json:"weights"`
	// Value is the loss.
	Value float64 `json:"value"`
	// Grads are the gradients of Value with respect to some parameters (by Hugging Face name),
	// flattened in the parameter's shape.
	Grads map[string][]float64 `json:"grads"`
}

// ReadGolden reads and validates dir/golden.json.
func ReadGolden(dir string) (*Golden, error) {
	path := filepath.Join(dir, "golden.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var g Golden
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := g.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &g, nil
}

// vocab is the number of logits per position.
func (g *Golden) vocab() int { return len(g.Logits[0]) / len(g.Sequences[0]) }

func (g *Golden) validate() error {
	if len(g.Sequences) < 2 {
		return fmt.Errorf("%d sequences, want at least 2", len(g.Sequences))
	}
	if len(g.Logits) != len(g.Sequences) {
		return fmt.Errorf("%d logits lists for %d sequences", len(g.Logits), len(g.Sequences))
	}
	if g.LogitsBF16 != nil && len(g.LogitsBF16) != len(g.Sequences) {
		return fmt.Errorf("%d logits_bf16 lists for %d sequences", len(g.LogitsBF16), len(g.Sequences))
	}
	for i, s := range g.Sequences {
		if len(s) < 2 {
			return fmt.Errorf("sequence %d has %d tokens, want at least 2", i, len(s))
		}
	}
	if len(g.Logits[0])%len(g.Sequences[0]) != 0 || len(g.Logits[0]) == 0 {
		return fmt.Errorf("sequence 0: %d logits for %d tokens", len(g.Logits[0]), len(g.Sequences[0]))
	}
	V := g.vocab()
	for i, s := range g.Sequences {
		if len(g.Logits[i]) != len(s)*V {
			return fmt.Errorf("sequence %d: %d logits, want %d tokens x %d", i, len(g.Logits[i]), len(s), V)
		}
		if g.LogitsBF16 != nil && len(g.LogitsBF16[i]) != len(s)*V {
			return fmt.Errorf("sequence %d: %d logits_bf16, want %d tokens x %d", i, len(g.LogitsBF16[i]), len(s), V)
		}
		for _, id := range s {
			if id < 0 || int(id) >= V {
				return fmt.Errorf("sequence %d: token %d outside the vocabulary of %d", i, id, V)
			}
		}
	}
	L := g.Loss
	if len(L.Tokens) == 0 || len(L.Targets) != len(L.Tokens) || len(L.Weights) != len(L.Tokens) {
		return fmt.Errorf("loss: %d tokens, %d targets, %d weights", len(L.Tokens), len(L.Targets), len(L.Weights))
	}
	if len(L.Grads) == 0 {
		return fmt.Errorf("loss: no gradients")
	}
	return nil
}
