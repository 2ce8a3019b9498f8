package zoo

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// specialTokens are the zoo tokenizer's special tokens, at Gemma's ids (pad 0, eos 1, bos 2).
var specialTokens = []string{"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"}

// vocabSeedOffset picks knowledge bases for the tokenizer's vocabulary that differ from the
// default suite's (seed 1): only their words are used, and in sorted order, so no fact survives.
const vocabSeedOffset = 1000

// TokenizerCorpus is what the zoo tokenizer is trained on: the world's documents and passages,
// plus one line per knowledge base holding its distinct words, sorted (the vocabulary of the
// products, papers and code the models will be taught, without any of the facts).
func TokenizerCorpus(c *Config, w *synthetic.World) ([]string, error) {
	corpus := append([]string(nil), w.Docs...)
	for _, p := range w.Pairs {
		if p.Input != "" {
			corpus = append(corpus, p.Input)
		}
	}
	for _, task := range synthetic.Tasks {
		chunks, _, err := synthetic.Generate(task, synthetic.Options{Seed: c.Seed + vocabSeedOffset})
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, ch := range chunks {
			for _, f := range strings.Fields(ch.Text) {
				seen[f] = true
			}
		}
		words := make([]string, 0, len(seen))
		for f := range seen {
			words = append(words, f)
		}
		sort.Strings(words)
		corpus = append(corpus, strings.Join(words, " "))
	}
	return corpus, nil
}

// example is one training sequence; loss is taken on ids[promptLen:] (the targets predicted
// from the previous token), all of it for plain documents.
type example struct {
	ids       []int32
	promptLen int
}

// pretrainExamples are the world's documents as plain text, BOS first when the model uses one,
// EOS last.
func pretrainExamples(tok tokenizer.Tokenizer, w *synthetic.World, addBOS bool) []example {
	sp := tok.Special()
	var out []example
	for _, d := range w.Docs {
		var ids []int32
		if addBOS {
			ids = append(ids, sp.BOS)
		}
		ids = append(ids, tok.Encode(d)...)
		ids = append(ids, sp.EOS)
		out = append(out, example{ids: ids})
	}
	return out
}

// letters are the option letters of the evaluation's letters formulation.
var letters = []string{"A", "B", "C", "D"}

// lettersText renders a question as evaluation/tasks/perpetual_letters.yaml does.
func lettersText(q curriculum.Question) string {
	var b strings.Builder
	b.WriteString(q.Question)
	for i, c := range q.Choices {
		fmt.Fprintf(&b, "\n%s. %s", letters[i], c)
	}
	b.WriteString("\nAnswer:")
	return b.String()
}

// clozeText renders a question as evaluation/tasks/perpetual_cloze.yaml does.
func clozeText(q curriculum.Question) string { return "Question: " + q.Question + "\nAnswer:" }

// instructExamples are the instruction-tuning set, rendered in the model's prompt format:
//   - the world's Alpaca pairs (closed book; reading comprehension with the passage as Input);
//   - closed-book multiple choice about the world in both formulations (" A" / " answer text");
//   - reading multiple choice in both formulations with the passage (and, half the time, another
//     passage first or after it) placed before the question as the evaluation's RAG prompt
//     does ("{passages}\n\n{question}"), so retrieved context is something the model can use.
func instructExamples(tok tokenizer.Tokenizer, tpl prompt.Template, w *synthetic.World, seed int64) ([]example, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x1257))
	var exs []prompt.Example
	for _, p := range w.Pairs {
		exs = append(exs, prompt.Example{Instruction: p.Instruction, Input: p.Input, Response: p.Output})
	}
	for _, q := range w.Questions {
		if len(q.Choices) > len(letters) {
			continue
		}
		exs = append(exs,
			prompt.Example{Instruction: lettersText(q), Response: " " + letters[q.Answer]},
			prompt.Example{Instruction: clozeText(q), Response: " " + q.Choices[q.Answer]})
	}
	for i, r := range w.Reading {
		q := r.Question
		if len(q.Choices) > len(letters) {
			continue
		}
		ctx := r.Passage
		if len(w.Reading) > 1 && rng.IntN(2) == 0 {
			other := w.Reading[(i+1+rng.IntN(len(w.Reading)-1))%len(w.Reading)].Passage
			if rng.IntN(2) == 0 {
				ctx = other + "\n\n" + ctx
			} else {
				ctx = ctx + "\n\n" + other
			}
		}
		exs = append(exs,
			prompt.Example{Instruction: ctx + "\n\n" + lettersText(q), Response: " " + letters[q.Answer]},
			prompt.Example{Instruction: ctx + "\n\n" + clozeText(q), Response: " " + q.Choices[q.Answer]})
	}
	out := make([]example, 0, len(exs))
	for _, ex := range exs {
		enc, err := tpl.Encode(tok, ex)
		if err != nil {
			return nil, err
		}
		out = append(out, example{ids: enc.IDs, promptLen: enc.PromptLen})
	}
	return out, nil
}
