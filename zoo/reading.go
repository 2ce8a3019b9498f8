package zoo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/rag"
	"github.com/perpetual-ml/perpetual/training"
)

// Recipe v3 (a model's `reading:` section) replaces v2's instruction tuning with one built to
// create in-context lookup, planned in supervised lookups rather than tokens
// (docs/zoo.md, ../shared/docs/reading-experiment.md):
//
//   - drills: copy drills (a random span, filler, the span again: the induction pattern) and
//     multi-query associative recall (key/value pairs, then queries), on the tokenizer's merged
//     word pieces, with loss on every recalled token;
//   - reading conversations: passages from a fresh practice-style knowledge base every epoch,
//     then several questions about the entities of every passage (so entity and attribute must
//     be bound), one turn each in the model's chat format; the first turn is exactly the
//     evaluation's RAG prompt, answers are rendered as the evaluation's continuations (" A" or
//     " answer text"), and the number of passages grows by epoch (the curriculum);
//   - a quarter of v2's instruction set every epoch (rotating), so the closed-book skills and
//     the practice facts are kept.

// ReadingConfig is recipe v3 for one model. Models without it are built by recipe v2.
type ReadingConfig struct {
	// Epochs of instruction tuning, each with fresh reading knowledge bases and drills.
	Epochs int `yaml:"epochs" json:"epochs"`
	// Chunks is the number of entities of each reading knowledge base (one per task and epoch).
	Chunks int `yaml:"chunks" json:"chunks"`
	// Passages is the largest number of passages in a reading context, by epoch (the last value
	// holds for later epochs): the curriculum from short contexts to the evaluation's two.
	Passages []int `yaml:"passages" json:"passages"`
	// Questions is the number of question turns after each context.
	Questions int `yaml:"questions" json:"questions"`
	// Drills is the number of copy and recall drills per epoch.
	Drills int `yaml:"drills" json:"drills"`
	// DrillReach, when set, makes half of the drills long-range: a copy drill's span repeats up
	// to DrillReach tokens later, a recall drill holds up to DrillReach/6 pairs with filler before
	// its queries. Without it every lookup is within ~70 tokens, and the lookup learned there
	// does not reach a passage a few hundred tokens back (measured: docs/zoo.md, "Reach").
	DrillReach int `yaml:"drill_reach,omitempty" json:"drill_reach,omitempty"`
	// DrillReachFrom is the first epoch (0-based) with long drills; earlier epochs keep every
	// drill short, so the lookup can form where it forms fastest before it is asked to reach.
	DrillReachFrom int `yaml:"drill_reach_from,omitempty" json:"drill_reach_from,omitempty"`
	// AnswerWeight, when set, puts the loss of reading conversations on every token (passages,
	// questions, the chat format) and weighs the answers' tokens AnswerWeight times as much;
	// without it the loss is on the answers only. Reading the passage as text teaches the
	// binding of entities and attributes the answers then look up.
	AnswerWeight float64 `yaml:"answer_weight,omitempty" json:"answer_weight,omitempty"`
	// SeqLen is the packed row length of this phase (two code files need more than 512).
	SeqLen int `yaml:"seq_len" json:"seq_len"`
	// BatchSize is the rows per step of this phase (0: train.batch_size). The token count at
	// which induction heads form grows with sqrt(batch x context) (docs/zoo.md).
	BatchSize int `yaml:"batch_size,omitempty" json:"batch_size,omitempty"`
	// LR and WarmupSteps of this phase (train.lr / train.warmup_steps are pre-training's).
	LR          float64 `yaml:"lr" json:"lr"`
	WarmupSteps int     `yaml:"warmup_steps" json:"warmup_steps"`
	// ProbeEvery is the number of steps between learning-curve probes (ProbeQuestions per task).
	ProbeEvery     int `yaml:"probe_every" json:"probe_every"`
	ProbeQuestions int `yaml:"probe_questions" json:"probe_questions"`
	// Schedule is the learning-rate schedule (training.ScheduleLinear, the default, or
	// training.ScheduleWSD: the full rate through the plateau, decaying over the last
	// DecayFraction of the steps).
	Schedule      string  `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	DecayFraction float64 `yaml:"decay_fraction,omitempty" json:"decay_fraction,omitempty"`
	// Init, when set, is a model folder (config.json and safetensors of this model's
	// architecture, e.g. an earlier run's checkpoint/model) whose weights the reading phase starts
	// from, instead of pre-training's: pre-training is skipped. It makes a curriculum a chain of
	// stages, each a config whose init is the stage before; the weights' hash joins the phase's
	// key and the manifest. A relative path is relative to the config file's folder.
	Init string `yaml:"init,omitempty" json:"init,omitempty"`
	// LetterDrills is the number of letter drills per epoch (0: none): random tokens holding
	// one value, then four options in the letters formulation's layout ("\nA. ", ...,
	// "\nAnswer:") and the letter of the option found in the context. The letters formulation
	// needs this step beyond cloze reading: match an option to the passage, answer its letter.
	LetterDrills int `yaml:"letter_drills,omitempty" json:"letter_drills,omitempty"`
	// LetterQueries, when positive, makes the letter drills keyed: key/value pairs, then 1 to
	// LetterQueries questions, each a key, options that all stand in the context (its value and
	// other keys' values) and the letter of the key's value (keyedLetterDrill). The evaluation's
	// distractors are other entities' values in the passage, so only the key can select; and
	// several letters per drill supervise more lookups per token. 0: session 7's drill (one
	// value in random tokens, the others absent).
	LetterQueries int `yaml:"letter_queries,omitempty" json:"letter_queries,omitempty"`
	// LetterTwoOptionEpochs is how many of this stage's first epochs give keyed drills two
	// options (A, B) instead of four: a curriculum inside the drills, as the recall drills grew
	// from short to far.
	LetterTwoOptionEpochs int `yaml:"letter_two_option_epochs,omitempty" json:"letter_two_option_epochs,omitempty"`
	// FirstEpoch numbers this stage's first epoch (0-based) in the whole curriculum: a stage
	// after Init continues the data streams (fresh knowledge bases and drills, the epoch-indexed
	// Passages and DrillReachFrom) where the stage before stopped, instead of repeating them.
	FirstEpoch int `yaml:"first_epoch,omitempty" json:"first_epoch,omitempty"`
}

func (r *ReadingConfig) check() error {
	switch {
	case r.Epochs < 1:
		return fmt.Errorf("reading.epochs must be positive, got %d", r.Epochs)
	case r.Chunks < 2:
		return fmt.Errorf("reading.chunks must be at least 2, got %d", r.Chunks)
	case len(r.Passages) == 0:
		return fmt.Errorf("reading.passages needs at least one value")
	case r.Questions < 1:
		return fmt.Errorf("reading.questions must be positive, got %d", r.Questions)
	case r.LetterDrills < 0:
		return fmt.Errorf("reading.letter_drills must not be negative, got %d", r.LetterDrills)
	case r.LetterQueries < 0 || r.LetterQueries > maxLetterQueries:
		return fmt.Errorf("reading.letter_queries must be 0 (unkeyed drills) to %d, got %d", maxLetterQueries, r.LetterQueries)
	case r.LetterTwoOptionEpochs < 0 || (r.LetterTwoOptionEpochs > 0 && (r.LetterQueries == 0 || r.LetterDrills == 0)):
		return fmt.Errorf("reading.letter_two_option_epochs (%d) must not be negative and needs keyed letter drills (letter_drills and letter_queries)", r.LetterTwoOptionEpochs)
	case r.FirstEpoch < 0:
		return fmt.Errorf("reading.first_epoch must not be negative, got %d", r.FirstEpoch)
	case r.Drills < 0:
		return fmt.Errorf("reading.drills must not be negative, got %d", r.Drills)
	case r.AnswerWeight < 0 || math.IsNaN(r.AnswerWeight) || math.IsInf(r.AnswerWeight, 0):
		return fmt.Errorf("reading.answer_weight must be 0 (loss on answers only) or a positive weight, got %g", r.AnswerWeight)
	case r.DrillReachFrom < 0 || (r.DrillReachFrom > 0 && r.DrillReach == 0):
		return fmt.Errorf("reading.drill_reach_from (%d) needs reading.drill_reach and must not be negative", r.DrillReachFrom)
	case r.DrillReach != 0 && (r.DrillReach < minDrillReach || r.DrillReach+longDrillSlack > r.SeqLen):
		return fmt.Errorf("reading.drill_reach must be 0 or between %d and reading.seq_len - %d (%d), got %d",
			minDrillReach, longDrillSlack, r.SeqLen-longDrillSlack, r.DrillReach)
	case r.SeqLen < 16:
		return fmt.Errorf("reading.seq_len must be at least 16, got %d", r.SeqLen)
	case !(r.LR > 0):
		return fmt.Errorf("reading.lr must be positive, got %g", r.LR)
	case r.WarmupSteps < 0 || r.ProbeEvery < 0 || r.ProbeQuestions < 0 || r.BatchSize < 0:
		return fmt.Errorf("reading.warmup_steps, batch_size, probe_every and probe_questions must not be negative")
	case r.Schedule != "" && r.Schedule != training.ScheduleLinear && r.Schedule != training.ScheduleWSD:
		return fmt.Errorf("reading.schedule %q is not %s or %s", r.Schedule, training.ScheduleLinear, training.ScheduleWSD)
	case r.Schedule == training.ScheduleWSD && !(r.DecayFraction > 0 && r.DecayFraction <= 1):
		return fmt.Errorf("reading.decay_fraction must be in (0, 1] with the wsd schedule, got %g", r.DecayFraction)
	}
	for _, p := range r.Passages {
		if p < 1 || p > r.Chunks {
			return fmt.Errorf("reading.passages: %d is not between 1 and reading.chunks (%d)", p, r.Chunks)
		}
	}
	return nil
}

// reachAt is the long drills' reach in epoch e (0-based): none before DrillReachFrom.
func (r *ReadingConfig) reachAt(e int) int {
	if e < r.DrillReachFrom {
		return 0
	}
	return r.DrillReach
}

// passagesAt is the largest context size of epoch e (0-based).
func (r *ReadingConfig) passagesAt(e int) int { return r.Passages[min(e, len(r.Passages)-1)] }

// Seeds of the v3 data streams. Reading knowledge bases use practice.seed + readingSeedBase +
// 100*epoch + task and the probe's use practice.seed + probeSeedBase + task: disjoint from the
// practice bases (practice.seed + task), v2's reading bases (practice.seed + 1000*(epoch+1) +
// task) and the default suite's seeds (1-3), and practice names never meet test names anyway.
const (
	readingSeedBase = 50_000
	probeSeedBase   = 90_000
)

// kbQuestions are every fact of a knowledge base as a multiple-choice question with its choices
// shuffled (seeded), grouped by chunk id.
func kbQuestions(chunks []curriculum.Chunk, facts []curriculum.Fact, rng *rand.Rand) map[string][]curriculum.Question {
	out := map[string][]curriculum.Question{}
	for i, f := range facts {
		choices := append([]string{f.TestAnswer}, f.Distractors...)
		perm := rng.Perm(len(choices))
		q := curriculum.Question{ID: fmt.Sprintf("%s#%d", f.ChunkID, i), Question: f.TestQuestion, ChunkID: f.ChunkID,
			Choices: make([]string, len(choices)), Kind: curriculum.KindDocumentOnly}
		for to, from := range perm {
			q.Choices[to] = choices[from]
			if from == 0 {
				q.Answer = to
			}
		}
		out[f.ChunkID] = append(out[f.ChunkID], q)
	}
	return out
}

// readingKB generates one reading knowledge base (every attribute questioned).
func readingKB(task string, seed int64, chunks int) ([]curriculum.Chunk, map[string][]curriculum.Question, error) {
	cs, fs, err := synthetic.Generate(task, synthetic.Options{Seed: seed, Chunks: chunks, FactsPerChunk: 7, Practice: true})
	if err != nil {
		return nil, nil, fmt.Errorf("zoo: reading knowledge base %s (seed %d): %w", task, seed, err)
	}
	return cs, kbQuestions(cs, fs, rand.New(rand.NewPCG(uint64(seed), 0x4b51))), nil
}

// turn is one question and its answer, rendered as the evaluation renders them.
type turn struct{ question, answer string }

// askTurn renders q in the letters or the cloze formulation (chosen by rng).
func askTurn(q curriculum.Question, rng *rand.Rand) turn {
	if rng.IntN(2) == 0 {
		return turn{lettersText(q), " " + letters[q.Answer]}
	}
	return turn{clozeText(q), " " + q.Choices[q.Answer]}
}

// conversation is one reading context and its question turns.
type conversation struct {
	context string
	turns   []turn
}

// readingConversations builds an epoch's contexts for one knowledge base: every chunk is the
// first passage's entity once; the context holds 1..maxPassages passages of the base in random
// order, and the turns ask about every entity in it (shuffled, at most nq), so the model must
// find the passage of the question's entity, then the attribute's sentence.
func readingConversations(chunks []curriculum.Chunk, qs map[string][]curriculum.Question, maxPassages, nq, seqChars int, rng *rand.Rand) []conversation {
	var out []conversation
	for _, ci := range rng.Perm(len(chunks)) {
		n := 1 + rng.IntN(maxPassages)
		picked := []int{ci}
		for _, j := range rng.Perm(len(chunks)) {
			if len(picked) == n {
				break
			}
			if j != ci {
				picked = append(picked, j)
			}
		}
		// Long passages (source files) are dropped from the end until the context fits a row.
		for len(picked) > 1 && passagesLen(chunks, picked) > seqChars {
			picked = picked[:len(picked)-1]
		}
		rng.Shuffle(len(picked), func(a, b int) { picked[a], picked[b] = picked[b], picked[a] })
		var pool []curriculum.Question
		texts := make([]string, len(picked))
		for k, j := range picked {
			texts[k] = rag.PassageText(chunks[j])
			pool = append(pool, qs[chunks[j].ID]...)
		}
		rng.Shuffle(len(pool), func(a, b int) { pool[a], pool[b] = pool[b], pool[a] })
		c := conversation{context: strings.Join(texts, rag.PassageSeparator)}
		for _, q := range pool[:min(nq, len(pool))] {
			c.turns = append(c.turns, askTurn(q, rng))
		}
		out = append(out, c)
	}
	return out
}

func passagesLen(chunks []curriculum.Chunk, idx []int) int {
	n := 0
	for _, j := range idx {
		n += len(rag.PassageText(chunks[j])) + len(rag.PassageSeparator)
	}
	return n
}

// encodeConversation encodes a conversation as one training example in the model's prompt
// format: the first user turn is the evaluation's RAG prompt (passages, a blank line, the
// question), later turns hold a question alone; loss on the answers (and the end-of-turn and
// EOS tokens the format puts after them), as the encoder's MaskAnswers does for one turn. With
// answerWeight > 0 the loss is on every token, the answers' weighing answerWeight.
func encodeConversation(tok tokenizer.Tokenizer, tpl prompt.Template, useBOS bool, c conversation, answerWeight float64) (training.Example, error) {
	sp := tok.Special()
	var ids []int32
	var train []bool
	var weights []float32
	add := func(text string, target bool) {
		for _, id := range tok.Encode(text) {
			ids = append(ids, id)
			train = append(train, target || answerWeight > 0)
			weights = append(weights, map[bool]float32{false: 1, true: float32(answerWeight)}[target])
		}
	}
	if useBOS && sp.BOS >= 0 {
		ids, train, weights = append(ids, sp.BOS), append(train, false), append(weights, 0)
	}
	for i, t := range c.turns {
		q := t.question
		if i == 0 {
			q = c.context + rag.PassageSeparator + q
		}
		add(strings.TrimPrefix(tpl.RenderPrompt(q, ""), "<bos>"), false)
		add(tpl.RenderResponse(t.answer), true)
		if tpl.AddEOS {
			ids, train, weights = append(ids, sp.EOS), append(train, true), append(weights, float32(answerWeight))
		}
	}
	if !tpl.AddEOS && sp.EOS >= 0 {
		ids, train, weights = append(ids, sp.EOS), append(train, true), append(weights, float32(answerWeight))
	}
	ex := training.Example{Name: "reading conversation", IDs: ids, Train: train}
	if answerWeight > 0 {
		ex.Weights = weights
	}
	return ex, nil
}

// drillVocab are the ids drills draw from: the tokenizer's merged pieces (whole words and
// word parts), not bytes or special tokens.
func drillVocab(tok tokenizer.Tokenizer) []int32 {
	first := int32(len(specialTokens) + 256)
	var out []int32
	for id := first; id < int32(tok.VocabSize()); id++ {
		out = append(out, id)
	}
	return out
}

// randomTokens draws n tokens of vocab.
func randomTokens(vocab []int32, n int, rng *rand.Rand) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = vocab[rng.IntN(len(vocab))]
	}
	return out
}

// copyExample is lead, span, gap, then span again, with loss on the repeated span after its
// first token: what an induction head predicts.
func copyExample(name string, lead, span, gap []int32) training.Example {
	var ids []int32
	for _, part := range [][]int32{lead, span, gap, span} {
		ids = append(ids, part...)
	}
	train := make([]bool, len(ids))
	for i := len(ids) - len(span) + 1; i < len(ids); i++ {
		train[i] = true
	}
	return training.Example{Name: name, IDs: ids, Train: train}
}

// recallExample is the key/value pairs, the filler, then the keys again in the order given, each
// followed by its value, with loss on the queried values (multi-query associative recall).
func recallExample(name string, keys, vals, filler []int32, order []int) training.Example {
	var ids []int32
	var train []bool
	for i, k := range keys {
		ids, train = append(ids, k, vals[i]), append(train, false, false)
	}
	ids, train = append(ids, filler...), append(train, make([]bool, len(filler))...)
	for _, i := range order {
		ids, train = append(ids, keys[i], vals[i]), append(train, false, true)
	}
	return training.Example{Name: name, IDs: ids, Train: train}
}

// pick returns vocab's entries at the given indices.
func pick(vocab []int32, idx []int) []int32 {
	out := make([]int32, len(idx))
	for i, j := range idx {
		out[i] = vocab[j]
	}
	return out
}

// copyDrill is a random span of 4-32 tokens, up to 16 filler tokens, then the span again.
func copyDrill(vocab []int32, rng *rand.Rand) training.Example {
	span := randomTokens(vocab, 4+rng.IntN(29), rng)
	lead := randomTokens(vocab, rng.IntN(17), rng)
	gap := randomTokens(vocab, rng.IntN(17), rng)
	return copyExample("copy drill", lead, span, gap)
}

// recallDrill is 3-16 key/value pairs of distinct keys, then every key again in another order.
func recallDrill(vocab []int32, rng *rand.Rand) training.Example {
	n := 3 + rng.IntN(14)
	keys := pick(vocab, rng.Perm(len(vocab))[:n])
	vals := randomTokens(vocab, n, rng)
	return recallExample("recall drill", keys, vals, nil, rng.Perm(n))
}

// minDrillReach is the smallest reach worth a long drill (short drills already reach ~70
// tokens); longDrillSlack bounds a long drill's tokens beyond its reach (lead-in and span).
const (
	minDrillReach  = 64
	longDrillSlack = 17 + 32
)

// longCopyDrill is copyDrill with the span repeated after a gap drawn uniformly up to reach
// tokens: the same induction pattern at the distances a passage sits from its question.
func longCopyDrill(vocab []int32, reach int, rng *rand.Rand) training.Example {
	span := randomTokens(vocab, 4+rng.IntN(29), rng)
	lead := randomTokens(vocab, rng.IntN(17), rng)
	gap := randomTokens(vocab, rng.IntN(reach-len(span)+1), rng)
	return copyExample("long copy drill", lead, span, gap)
}

// longRecallDrill is recallDrill with up to reach/6 pairs and random filler between the pairs
// and the queries, so that the first pair is up to reach tokens before its query.
func longRecallDrill(vocab []int32, reach int, rng *rand.Rand) training.Example {
	n := 3 + rng.IntN(max(1, min(reach/6, len(vocab)-1)-2))
	perm := rng.Perm(len(vocab))
	keys := pick(vocab, perm[:n])
	vals := randomTokens(vocab, n, rng)
	// Filler from the keys' complement, so that a key appears only at its pair and its query.
	filler := randomTokens(pick(vocab, perm[n:]), rng.IntN(reach-4*n+1), rng)
	return recallExample("long recall drill", keys, vals, filler, rng.Perm(n))
}

// drill is drill number d of an epoch: copy and recall alternate; with a reach, every other
// pair of them is long-range.
func drill(vocab []int32, reach, d int, rng *rand.Rand) training.Example {
	long := reach > 0 && (d/2)%2 == 1
	switch {
	case long && d%2 == 0:
		return longCopyDrill(vocab, reach, rng)
	case long:
		return longRecallDrill(vocab, reach, rng)
	case d%2 == 0:
		return copyDrill(vocab, rng)
	default:
		return recallDrill(vocab, rng)
	}
}

// letterLayout is the letters formulation's tokens around a drill's options: each option's
// lead ("\nA. "), the prompt's end ("\nAnswer:") and each answer (" A").
type letterLayout struct {
	lead, answer [4][]int32
	end          []int32
}

func newLetterLayout(tok tokenizer.Tokenizer) letterLayout {
	var l letterLayout
	for i, x := range letters {
		l.lead[i], l.answer[i] = tok.Encode("\n"+x+". "), tok.Encode(" "+x)
	}
	l.end = tok.Encode("\nAnswer:")
	return l
}

// letterDrill is 8-64 random tokens holding one value of 1-3 tokens, then four options of the
// same length in the letters layout (the value and three drawn from tokens absent from the
// context), then the letter of the option found in the context, with loss on that letter.
func letterDrill(vocab []int32, layout letterLayout, rng *rand.Rand) training.Example {
	perm := rng.Perm(len(vocab))
	half := len(vocab) / 2
	inside, outside := pick(vocab, perm[:half]), pick(vocab, perm[half:])
	n := 1 + rng.IntN(3)
	value := randomTokens(inside, n, rng)
	ctx := randomTokens(inside, 8+rng.IntN(57)-n, rng)
	at := rng.IntN(len(ctx) + 1)
	ctx = append(ctx[:at], append(append([]int32(nil), value...), ctx[at:]...)...)
	gold := rng.IntN(4)
	ids := append([]int32(nil), ctx...)
	for i := range 4 {
		ids = append(ids, layout.lead[i]...)
		if i == gold {
			ids = append(ids, value...)
		} else {
			ids = append(ids, randomTokens(outside, n, rng)...)
		}
	}
	ids = append(ids, layout.end...)
	train := make([]bool, len(ids))
	for range layout.answer[gold] {
		train = append(train, true)
	}
	ids = append(ids, layout.answer[gold]...)
	return training.Example{Name: "letter drill", IDs: ids, Train: train}
}

// maxLetterQueries bounds ReadingConfig.LetterQueries: a keyed drill with that many questions
// of four two-token options stays under ~200 tokens.
const maxLetterQueries = 8

// keyedLetterDrill is 4-12 key/value pairs (distinct one-token keys, distinct values of 1-2
// tokens), then 1 to queries questions: a key, then `options` values of the pairs in the letters
// layout (the key's own and other keys', so every option stands in the context), and the letter
// of the key's value, with loss on each letter. It is the letters formulation's step on a
// passage in miniature: look the key's value up, find it among the options, answer its letter.
func keyedLetterDrill(vocab []int32, layout letterLayout, options, queries int, rng *rand.Rand) training.Example {
	n := 4 + rng.IntN(9)
	perm := rng.Perm(len(vocab))
	keys := pick(vocab, perm[:n])
	rest := pick(vocab, perm[n:]) // values never look like keys
	vals := make([][]int32, n)
	taken := map[string]bool{}
	for i := range vals {
		for {
			v := randomTokens(rest, 1+rng.IntN(2), rng)
			if k := fmt.Sprint(v); !taken[k] {
				taken[k], vals[i] = true, v
				break
			}
		}
	}
	var ids []int32
	for i, k := range keys {
		ids = append(append(ids, k), vals[i]...)
	}
	train := make([]bool, len(ids))
	for range 1 + rng.IntN(queries) {
		shown := rng.Perm(n)[:options] // shown[0] is the queried pair
		gold := rng.IntN(options)
		shown[0], shown[gold] = shown[gold], shown[0]
		ids = append(ids, keys[shown[gold]])
		for i, pair := range shown {
			ids = append(append(ids, layout.lead[i]...), vals[pair]...)
		}
		ids = append(ids, layout.end...)
		train = append(train, make([]bool, len(ids)-len(train))...)
		ids = append(ids, layout.answer[gold]...)
		for range layout.answer[gold] {
			train = append(train, true)
		}
	}
	return training.Example{Name: "keyed letter drill", IDs: ids, Train: train}
}

// instructShare: each epoch keeps one in instructShare of v2's instruction examples (a
// different share each epoch), so closed-book skills and practice facts are kept at a quarter
// of v2's cost.
const instructShare = 4

// readingData is the reading phase's examples: the stage's epochs laid out in curriculum order.
func readingData(tok tokenizer.Tokenizer, tpl prompt.Template, useBOS bool, r *ReadingConfig, practiceSeed int64, inst []training.Example) ([]training.Example, error) {
	var out []training.Example
	for e := range r.Epochs {
		exs, err := readingEpoch(tok, tpl, useBOS, r, practiceSeed, inst, r.FirstEpoch+e)
		if err != nil {
			return nil, err
		}
		out = append(out, exs...)
	}
	return out, nil
}

// readingEpoch is one epoch of recipe v3's instruction data (unshuffled): drills, reading
// conversations on fresh knowledge bases (one per task) and a share of v2's instruction set.
func readingEpoch(tok tokenizer.Tokenizer, tpl prompt.Template, useBOS bool, r *ReadingConfig, practiceSeed int64, inst []training.Example, epoch int) ([]training.Example, error) {
	rng := rand.New(rand.NewPCG(uint64(practiceSeed)+uint64(epoch), 0x3ead))
	vocab := drillVocab(tok)
	var out []training.Example
	for d := range r.Drills {
		out = append(out, drill(vocab, r.reachAt(epoch), d, rng))
	}
	if r.LetterDrills > 0 {
		layout := newLetterLayout(tok)
		options := 4
		if epoch-r.FirstEpoch < r.LetterTwoOptionEpochs {
			options = 2
		}
		for range r.LetterDrills {
			if r.LetterQueries > 0 {
				out = append(out, keyedLetterDrill(vocab, layout, options, r.LetterQueries, rng))
			} else {
				out = append(out, letterDrill(vocab, layout, rng))
			}
		}
	}
	seqChars := r.SeqLen * 2 // a conservative bytes-per-token bound for the passages
	for i, task := range synthetic.Tasks {
		chunks, qs, err := readingKB(task, practiceSeed+readingSeedBase+100*int64(epoch)+int64(i), r.Chunks)
		if err != nil {
			return nil, err
		}
		for _, c := range readingConversations(chunks, qs, r.passagesAt(epoch), r.Questions, seqChars, rng) {
			ex, err := encodeConversation(tok, tpl, useBOS, c, r.AnswerWeight)
			if err != nil {
				return nil, err
			}
			// Drop turns from the end until the conversation fits a row.
			for len(ex.IDs) > r.SeqLen && len(c.turns) > 1 {
				c.turns = c.turns[:len(c.turns)-1]
				if ex, err = encodeConversation(tok, tpl, useBOS, c, r.AnswerWeight); err != nil {
					return nil, err
				}
			}
			if len(ex.IDs) <= r.SeqLen {
				out = append(out, ex)
			}
		}
	}
	for k, ex := range inst {
		if k%instructShare == epoch%instructShare {
			out = append(out, ex)
		}
	}
	rng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	return out, nil
}
