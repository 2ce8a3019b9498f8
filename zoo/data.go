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
	"github.com/perpetual-ml/perpetual/rag"
	"github.com/perpetual-ml/perpetual/training"
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

// pretrainExamples are the world's documents as plain text, BOS first when the model uses one,
// EOS last, loss on every token.
func pretrainExamples(enc *training.Encoder, w *synthetic.World) ([]training.Example, error) {
	var out []training.Example
	for i, d := range w.Docs {
		ex, err := enc.Doc(fmt.Sprintf("world document %d", i), d)
		if err != nil {
			return nil, err
		}
		out = append(out, ex)
	}
	return out, nil
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
//     does ("{passages}\n\n{question}"), so retrieved context is something the model can use;
//   - the practice knowledge bases' test questions, closed book (closedBookQuestions).
//
// They are encoded as the fine-tuner encodes a flashcard (training.Encoder), with loss on the
// responses only (the encoder's Mask must be training.MaskAnswers).
func instructExamples(enc *training.Encoder, w *synthetic.World, practice []*curriculum.Curriculum, seed int64) ([]training.Example, error) {
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
	exs = append(exs, closedBookQuestions(practice)...)
	return encodeAll(enc, "instruction example", exs)
}

// practiceCurricula are the practice knowledge bases, one per synthetic task, assembled as the
// harness assembles a test knowledge base (seen and document-only facts, a multiple-choice test).
func practiceCurricula(c *Config) ([]*curriculum.Curriculum, error) {
	if c.Practice.Chunks == 0 {
		return nil, nil
	}
	var out []*curriculum.Curriculum
	for i, task := range synthetic.Tasks {
		cur, err := synthetic.Build(task, synthetic.Options{Seed: c.Practice.Seed + int64(i), Chunks: c.Practice.Chunks,
			FactsPerChunk: c.Practice.FactsPerChunk, Practice: true})
		if err != nil {
			return nil, fmt.Errorf("zoo: practice knowledge base %s: %w", task, err)
		}
		out = append(out, cur)
	}
	return out, nil
}

// practiceTrainExamples are the practice curricula's training items (documents and flashcards),
// encoded exactly as the harness's fine-tuner encodes a curriculum (package training: the
// model's prompt template, the paper's interleaving, loss on every token).
func practiceTrainExamples(tok tokenizer.Tokenizer, tpl prompt.Template, curs []*curriculum.Curriculum, addBOS bool) ([]training.Example, error) {
	enc := &training.Encoder{Tok: tok, Options: training.DataOptions{Template: tpl, Mask: training.MaskAll, Order: training.OrderPaper}, UseBOS: addBOS}
	var out []training.Example
	for _, cur := range curs {
		exs, err := enc.Items("practice "+cur.Manifest.Options["task"], cur.Train)
		if err != nil {
			return nil, err
		}
		out = append(out, exs...)
	}
	return out, nil
}

// closedBookQuestions are the practice curricula's test questions without passages, in both
// formulations: the fine-tuned condition's skill (answer from what was learned).
func closedBookQuestions(curs []*curriculum.Curriculum) []prompt.Example {
	var exs []prompt.Example
	for _, cur := range curs {
		for _, q := range cur.Test {
			if len(q.Choices) > len(letters) {
				continue
			}
			exs = append(exs,
				prompt.Example{Instruction: lettersText(q), Response: " " + letters[q.Answer]},
				prompt.Example{Instruction: clozeText(q), Response: " " + q.Choices[q.Answer]})
		}
	}
	return exs
}

// readingQuestions are the test questions of knowledge bases the model has never been taught,
// each with its own passage and, two times in three, another passage of its knowledge base
// before or after it, placed before the question as the evaluation's RAG prompt does: the RAG
// condition's skill. Since nothing else teaches these facts, copying from the passage is the
// only way to answer them.
func readingQuestions(curs []*curriculum.Curriculum, seed int64) []prompt.Example {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9ac7))
	var exs []prompt.Example
	for _, cur := range curs {
		chunks := cur.ChunkByID()
		for _, q := range cur.Test {
			own, ok := chunks[q.ChunkID]
			if len(q.Choices) > len(letters) || !ok || len(cur.Chunks) < 2 {
				continue
			}
			other := cur.Chunks[rng.IntN(len(cur.Chunks))]
			for other.ID == own.ID {
				other = cur.Chunks[rng.IntN(len(cur.Chunks))]
			}
			var ctx string
			pick := rng.IntN(3)
			if len(own.Text)+len(other.Text) > maxTwoPassageChars {
				pick = 0 // long source files: one passage, so the example fits a training row
			}
			switch pick {
			case 0:
				ctx = rag.PassageText(*own)
			case 1:
				ctx = rag.PassageText(*own) + "\n\n" + rag.PassageText(other)
			default:
				ctx = rag.PassageText(other) + "\n\n" + rag.PassageText(*own)
			}
			exs = append(exs,
				prompt.Example{Instruction: ctx + "\n\n" + lettersText(q), Response: " " + letters[q.Answer]},
				prompt.Example{Instruction: ctx + "\n\n" + clozeText(q), Response: " " + q.Choices[q.Answer]})
		}
	}
	return exs
}

// maxTwoPassageChars bounds the text of two passages given together in a reading example.
const maxTwoPassageChars = 1000

// readingCurricula are fresh practice knowledge bases for reading practice, a new set for every
// instruction-tuning epoch (so no reading question repeats and none can be memorised).
func readingCurricula(c *Config, epoch int) ([]*curriculum.Curriculum, error) {
	if c.Practice.Chunks == 0 {
		return nil, nil
	}
	var out []*curriculum.Curriculum
	for i, task := range synthetic.Tasks {
		cur, err := synthetic.Build(task, synthetic.Options{Seed: c.Practice.Seed + 1000*int64(epoch+1) + int64(i), Chunks: c.Practice.Chunks,
			FactsPerChunk: c.Practice.FactsPerChunk, Practice: true})
		if err != nil {
			return nil, fmt.Errorf("zoo: reading knowledge base %s: %w", task, err)
		}
		out = append(out, cur)
	}
	return out, nil
}

// encodeAll encodes instruction examples with loss on the responses.
func encodeAll(enc *training.Encoder, what string, exs []prompt.Example) ([]training.Example, error) {
	out := make([]training.Example, 0, len(exs))
	for i, ex := range exs {
		e, err := enc.Flashcard(fmt.Sprintf("%s %d", what, i), ex)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
