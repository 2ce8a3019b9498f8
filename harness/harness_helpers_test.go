package harness

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// scaleTuner is a FineTuner test double: it "trains" by scaling every weight of the base model by
// (1 + 0.05*seed), so fine-tuned models differ from their base and from each other by seed, and
// counts its calls so tests can check what was (not) retrained.
type scaleTuner struct {
	mu    sync.Mutex
	calls int
}

func (s *scaleTuner) Version() string { return "scale-v1" }

func (s *scaleTuner) FineTune(_ context.Context, req FineTuneRequest) (*FineTuneResult, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	m, err := lm.Load(req.BaseModel, lm.LoadOptions{})
	if err != nil {
		return nil, err
	}
	factor := float32(1 + 0.05*float64(req.Seed))
	w := map[string]*tensors.Tensor{}
	for name, t := range m.Weights() {
		data := tensors.MustCopyFlatData[float32](t)
		for i := range data {
			data[i] *= factor
		}
		w[name] = tensors.FromFlatDataAndDimensions(data, t.Shape().Dimensions...)
	}
	if err := m.SetWeights(w); err != nil {
		return nil, err
	}
	if err := m.Save(req.Out, checkpoint.SaveOptions{TokenizerFrom: req.BaseModel}); err != nil {
		return nil, err
	}
	var loss []LossStep
	for step := 1; step <= req.Recipe.Epochs; step++ {
		loss = append(loss, LossStep{Step: step, Loss: float64(factor) / float64(step)})
	}
	ret := &results.Retention{Prompts: 2, PerplexityBefore: 5, PerplexityAfter: 5 * float64(factor), StopRateBefore: 1, StopRateAfter: 0.5,
		Prompt: "Name a river.", SampleBefore: "The Lune.", SampleAfter: "Lune Lune"}
	return &FineTuneResult{Loss: loss, Retention: ret}, nil
}

// miniSuite is the suite of most run tests: one small synthetic task, a zoo model with a chat
// template and a model folder of the caller's (${OTHER_MODEL}), every formulation, two seeds.
const miniSuite = `
name: mini
tasks:
  - name: products
    synthetic: {kind: products, seed: 3, chunks: 6, facts_per_chunk: 2}
    rag: {k: 1}
models:
  - name: gemma-tiny
    path: zoo:gemma-tiny
    chat_template: "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
  - name: other
    path: ${OTHER_MODEL}
formulations: [letters, cloze, recall]
training: {epochs: 2, lr: 0.001}
seeds: [1, 2]
eval: {batch_size: 16, bootstrap: 200, limit: 8}
`

// nearlyEqual compares log-likelihoods computed at different batch sizes (EvaluateOne uses 8).
func nearlyEqual(a, b float64) bool { return math.Abs(a-b) <= 1e-5*math.Abs(b) }

// mustLoadResults is LoadResults, failing t on an error.
func mustLoadResults(t *testing.T, dir string) *Results {
	t.Helper()
	r, err := LoadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// cellRunner returns run(yml, wantEvaluated), for the tests of what reruns a cell and what keeps
// it: run parses a suite of the given number of cells (as file, relative to dir), runs it with
// opt and fails t unless exactly wantEvaluated cells were evaluated and the others read from the
// cache.
func cellRunner(t *testing.T, dir, file string, opt Options, cells int) func(yml string, wantEvaluated int) *Report {
	return func(yml string, wantEvaluated int) *Report {
		t.Helper()
		s, err := Parse([]byte(yml), file, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), s, opt)
		if err != nil {
			t.Fatal(err)
		}
		if rep.CellsEvaluated != wantEvaluated || rep.CellsCached != cells-wantEvaluated {
			t.Fatalf("%d cells evaluated, %d cached; want %d evaluated", rep.CellsEvaluated, rep.CellsCached, wantEvaluated)
		}
		return rep
	}
}
