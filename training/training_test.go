package training_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/harness"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/training"

	_ "github.com/perpetual-ml/perpetual/models/gemma"
	_ "github.com/perpetual-ml/perpetual/models/mamba"
)

// tinyModel builds the harness's random-init tiny model of the given config in a temp folder.
func tinyModel(t testing.TB, config map[string]any) (string, *lm.Model, tokenizer.Tokenizer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	if err := harness.BuildRandomModel(dir, config, 1); err != nil {
		t.Fatal(err)
	}
	m, err := lm.Load(dir, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m, tok
}

func tinyCurriculum(t testing.TB, chunks int) *curriculum.Curriculum {
	t.Helper()
	c, err := synthetic.Build("products", synthetic.Options{Seed: 1, Chunks: chunks, FactsPerChunk: 3})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// accuracy scores the "seen" multiple-choice questions by the log-likelihood of the training
// flashcard of the same fact (same chunk, answer stating the right choice) with each choice put in
// the answer: a tiny model memorises the flashcards' wording but does not generalise to the test
// questions' paraphrases, so this asks "has it learned the fact as taught" against 4 choices.
func accuracy(t testing.TB, m *lm.Model, tok tokenizer.Tokenizer, c *curriculum.Curriculum) (float64, int) {
	t.Helper()
	tmpl, _ := prompt.Format("alpaca")
	var reqs []lm.Request
	var qs []curriculum.Question
	for _, q := range c.Test {
		if q.Kind != curriculum.KindSeen {
			continue
		}
		right := q.Choices[q.Answer]
		for _, it := range c.Train {
			if it.Type != curriculum.TypeQnA || it.ChunkID != q.ChunkID || !strings.Contains(it.Answer, right) {
				continue
			}
			qs = append(qs, q)
			ctx := append([]int32{tok.Special().BOS}, tok.Encode(tmpl.RenderPrompt(it.Question, ""))...)
			for _, ch := range q.Choices {
				reqs = append(reqs, lm.Request{Context: ctx, Continuation: tok.Encode(strings.Replace(it.Answer, right, ch, 1))})
			}
			break
		}
	}
	if len(qs) == 0 {
		t.Fatal("no seen question matches a flashcard")
	}
	res, err := m.LogLikelihood(reqs, 16)
	if err != nil {
		t.Fatal(err)
	}
	right, k := 0, 0
	for _, q := range qs {
		best := 0
		for i := range q.Choices {
			if res[k+i].LogProb > res[k+best].LogProb {
				best = i
			}
		}
		if best == q.Answer {
			right++
		}
		k += len(q.Choices)
	}
	return float64(right) / float64(len(qs)), len(qs)
}

func TestTrainingLearnsSeenFacts(t *testing.T) {
	_, m, tok := tinyModel(t, harness.TinyGemmaConfig)
	c := tinyCurriculum(t, 12)
	before, n := accuracy(t, m, tok, c)
	res, err := training.Run(m, tok, c, training.Options{Out: t.TempDir(), Epochs: 30, LR: 5e-3, WarmupSteps: 2, BatchSize: 4, Accumulation: 1, MaxLength: 256, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := accuracy(t, m, tok, c)
	first, last := res.Metrics[0].Loss, res.Metrics[len(res.Metrics)-1].Loss
	t.Logf("%d steps, loss %.3f -> %.3f, seen accuracy %.2f -> %.2f on %d questions", res.Steps, first, last, before, after, n)
	if !(last < first/2) {
		t.Errorf("loss %.3f -> %.3f: did not halve", first, last)
	}
	if after < 0.6 {
		t.Errorf("seen accuracy after training %.2f (before %.2f), want >= 0.6 (chance 0.25)", after, before)
	}
}

var _ = fmt.Sprint
var _ = math.Abs
var _ = os.Stat
var _ = strings.Contains
var _ = tensors.FromScalar[float32]
