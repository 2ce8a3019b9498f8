package training

import (
	"fmt"
	"math/rand/v2"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// Bench is the trainer's optimizer step on fixed synthetic data, for timing it: `perpetual
// bench` and the model packages' BenchmarkTrainStep run it, so what they time is Fit's own
// step (NewState, Pack, MakeBatch, the accumulate graph with TokenLoss, clipping and AdamW
// through Steps.Step), not a copy of it.
type Bench struct {
	setup *Setup
	steps *Steps
	state *State
	batch Batch
	hyper Hyper
	done  int
}

// NewBench prepares full fine-tuning of model on batch rows of length tokens: seeded random
// token ids cut into a few documents per row (one per 16 tokens, at most 4), packed by
// Pack into exactly batch full rows, so segments and positions restart per document and the
// last token of each document has no target, as in a packed training run. The optimizer is
// AdamW at the default Options (weight decay 0.01, betas 0.9/0.999, eps 1e-8, clipping 1.0)
// with the learning rate held at the default 2e-4 (a schedule does not change the work). Every
// Step trains on the same batch. The model's own weights are not changed.
func NewBench(model *lm.Model, batch, length int, seed int64) (*Bench, error) {
	arch := model.Arch()
	if batch < 1 {
		return nil, fmt.Errorf("training bench: batch %d: need at least 1 row", batch)
	}
	if length < 2 {
		return nil, fmt.Errorf("training bench: length %d: a row needs at least 2 tokens (one input, one target)", length)
	}
	if ml := arch.MaxLength(); ml > 0 && length > ml {
		return nil, fmt.Errorf("training bench: length %d exceeds the %s model's maximum length %d; use a shorter length", length, arch.Family(), ml)
	}
	exs := benchExamples(batch, length, arch.VocabSize(), seed)
	rows, err := Pack(exs, length, true)
	if err != nil {
		return nil, err
	}
	if len(rows) != batch {
		return nil, fmt.Errorf("training bench: packing made %d rows, want %d", len(rows), batch)
	}
	for i, r := range rows {
		if len(r.Tokens) != length {
			return nil, fmt.Errorf("training bench: packed row %d has %d tokens, want %d", i, len(r.Tokens), length)
		}
	}
	setup, state, err := NewState(model, nil, seed)
	if err != nil {
		return nil, err
	}
	steps, err := NewSteps(model.Backend(), setup)
	if err != nil {
		return nil, err
	}
	o := Options{}
	o.Defaults()
	return &Bench{setup: setup, steps: steps, state: state, batch: MakeBatch(rows, batch, length), hyper: o.hyper()}, nil
}

// benchDocsPerRow is how many documents NewBench packs into a row of length tokens.
func benchDocsPerRow(length int) int { return max(1, min(4, length/16)) }

// benchExamples makes batch rows' worth of random documents: each row's length tokens are cut
// at random points into n = benchDocsPerRow(length) documents of at least length/(2n) tokens.
func benchExamples(batch, length, vocab int, seed int64) []Example {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xbe9c))
	n := benchDocsPerRow(length)
	var exs []Example
	for r := range batch {
		sizes := make([]int, n)
		left := length
		for d := range n {
			if d == n-1 {
				sizes[d] = left
				break
			}
			minSize := length / (2 * n)
			maxSize := left - minSize*(n-1-d)
			sizes[d] = minSize + rng.IntN(maxSize-minSize+1)
			left -= sizes[d]
		}
		for d, size := range sizes {
			ex := Example{Name: fmt.Sprintf("bench row %d document %d", r, d), IDs: make([]int32, size), Train: make([]bool, size)}
			for i := range size {
				ex.IDs[i] = int32(rng.IntN(vocab))
				ex.Train[i] = true
			}
			exs = append(exs, ex)
		}
	}
	return exs
}

// Step runs one optimizer step on the bench's batch (the first call compiles the graphs).
func (b *Bench) Step() (StepStats, error) {
	stats, err := b.steps.Step(b.state, []Batch{b.batch}, b.hyper, b.done+1)
	if err == nil {
		b.done++
	}
	return stats, err
}

// Tokens is the number of tokens one step trains on: batch x length, all real (no padding).
func (b *Bench) Tokens() int { return b.batch.B * b.batch.T }

// Targets is the number of loss targets of one step (tokens minus each document's last).
func (b *Bench) Targets() int { return b.batch.NumTargets }

// Memory is EstimateMemory (the trainer's pre-flight check) for this model and batch.
func (b *Bench) Memory(model *lm.Model) lm.MemoryEstimate {
	return EstimateMemory(b.setup, model, b.batch.B, b.batch.T)
}
