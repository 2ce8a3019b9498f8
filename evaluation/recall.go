package evaluation

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/schollz/progressbar/v3"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// Generator continues a prompt of token ids; *lm.Model satisfies it (its cached decoding, greedy
// when Temperature is 0).
type Generator interface {
	Generate(prompt []int32, opts lm.GenerateOptions) ([]int32, error)
}

// Decoder turns token ids back into text, special tokens as their strings, as models/tokenizer's
// tokenizers do (so an until string such as "<end_of_turn>" is found in the text).
type Decoder interface {
	Decode(ids []int32) string
}

// Generation is what the recall formulation needs besides the Encoder: the model that generates,
// the tokenizer that decodes, and the token ids that end an answer.
type Generation struct {
	// Generator generates greedily (an lm.Model).
	Generator Generator
	// Decoder decodes generated ids (the model's tokenizer).
	Decoder Decoder
	// StopTokens end an answer as soon as one is generated: the tokenizer's EOS. The task's until
	// strings end it too.
	StopTokens []int32
}

// RecallAnswer is a recall sample's generated answer and its two scores (the "recall" object of a
// samples_<task>.jsonl line).
type RecallAnswer struct {
	// Gold is the gold choice's text, the target.
	Gold string `json:"gold"`
	// Generated is the answer: the decoded generation before the first until string, without
	// stop tokens (lm-evaluation-harness's cut of generate_until).
	Generated string `json:"generated"`
	// TokenIDs are every generated id, a final stop token included.
	TokenIDs []int32 `json:"token_ids"`
	// Stopped says what ended generation: "eos" (a stop token), "until" (StopString), "length"
	// (max_gen_toks).
	Stopped    string `json:"stopped"`
	StopString string `json:"stop_string,omitempty"`
	// NormalizedGenerated and NormalizedGold are NormalizeAnswer of each.
	NormalizedGenerated string `json:"normalized_generated"`
	NormalizedGold      string `json:"normalized_gold"`
	// ExactMatch is 1 when the normalised answer equals the normalised gold; Contains is 1 when
	// the normalised gold occurs in the normalised answer as whole words (see ContainsAnswer).
	ExactMatch float64 `json:"exact_match"`
	Contains   float64 `json:"contains"`
}

// asciiPunctuation is Python's string.punctuation, the characters SQuAD's normalisation removes.
const asciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// NormalizeAnswer is SQuAD's answer normalisation (normalize_answer of the official v1.1
// evaluation script): lowercase; remove punctuation, which is Python's string.punctuation plus
// every Unicode punctuation character (curly quotes, dashes; SQuAD's ASCII set would keep them);
// remove the articles "a", "an" and "the" as whole words; collapse whitespace to single spaces,
// none at either end. Punctuation is removed, not replaced by a space, as in SQuAD
// ("state-of-the-art" becomes "stateoftheart").
func NormalizeAnswer(s string) string {
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune(asciiPunctuation, r) || unicode.IsPunct(r) {
			return -1
		}
		return r
	}, strings.ToLower(s))
	words := strings.Fields(s)
	kept := words[:0]
	for _, w := range words {
		if w != "a" && w != "an" && w != "the" {
			kept = append(kept, w)
		}
	}
	return strings.Join(kept, " ")
}

// ExactMatch reports whether an answer equals the gold answer after NormalizeAnswer.
func ExactMatch(answer, gold string) bool { return NormalizeAnswer(answer) == NormalizeAnswer(gold) }

// ContainsAnswer reports whether the normalised gold answer occurs in the normalised answer as a
// run of whole words ("paris" is in "it is paris france" but not in "parisian"). A gold answer
// that normalises to nothing is contained only in an answer that does too. An exact match is
// always contained.
func ContainsAnswer(answer, gold string) bool {
	a, g := NormalizeAnswer(answer), NormalizeAnswer(gold)
	if g == "" {
		return a == ""
	}
	return strings.Contains(" "+a+" ", " "+g+" ")
}

// cutAnswer decodes generated ids as far as an answer goes: up to the first stop token, then cut
// before the earliest until string. done reports whether the answer has ended (a stop token or an
// until string), so generation can stop.
func cutAnswer(ids []int32, dec Decoder, stopTokens []int32, until []string) (text, stopped, stopString string, done bool) {
	end := len(ids)
	for i, id := range ids {
		if slices.Contains(stopTokens, id) {
			end, stopped, done = i, "eos", true
			break
		}
	}
	text = dec.Decode(ids[:end])
	cut := -1
	for _, u := range until {
		if i := strings.Index(text, u); i >= 0 && (cut < 0 || i < cut) {
			cut, stopString = i, u
		}
	}
	if cut >= 0 {
		return text[:cut], "until", stopString, true
	}
	if !done {
		stopped = "length"
	}
	return text, stopped, "", done
}

// GenerationKey identifies a greedy generation by a model (its hash) for the cache: the prompt's
// tokens and everything that decides where generation stops.
func GenerationKey(model string, prompt []int32, maxNew int, stopTokens []int32, until []string) string {
	parts := []int32{int32(maxNew), int32(len(stopTokens))}
	parts = append(parts, stopTokens...)
	for _, u := range until {
		parts = append(parts, int32(len(u)))
		for _, b := range []byte(u) {
			parts = append(parts, int32(b))
		}
	}
	// The "generate" marker (-1, never a token id) keeps these keys apart from CacheKey's.
	return CacheKey(model, Request{Context: prompt, Continuation: append([]int32{-1}, parts...)})
}

// buildRecallSample renders the prompt (retrieved context dropped from the lowest-ranked passage
// until prompt and answer fit the window, then lm-evaluation-harness's left truncation to
// max_length - max_gen_toks tokens) and returns the sample and the prompt's token ids.
func buildRecallSample(q *curriculum.Question, opt Options) (Sample, []int32, error) {
	t := opt.Task
	kw := t.GenerationKwargs
	choices := t.Choices(q)
	if q.Answer >= len(choices) {
		return Sample{}, nil, fmt.Errorf("answer %d but the question has %d choices", q.Answer, len(choices))
	}
	room := 0
	if opt.Encoder.MaxLength > 0 {
		room = opt.Encoder.MaxLength - kw.MaxGenToks
		if room < 1 {
			return Sample{}, nil, fmt.Errorf("generation_kwargs.max_gen_toks %d leaves no room for a prompt in the model's window of %d tokens", kw.MaxGenToks, opt.Encoder.MaxLength)
		}
	}
	prompt, err := t.Prompt(q)
	if err != nil {
		return Sample{}, nil, err
	}
	s := Sample{Doc: *q, Target: q.Answer, Gold: q.Answer, Prediction: -1, PredNorm: -1, Kind: q.Kind,
		Recall: &RecallAnswer{Gold: choices[q.Answer]}}
	var passages []Passage
	if opt.Retriever != nil {
		if passages, err = opt.Retriever.Retrieve(q.Question, opt.K); err != nil {
			return Sample{}, nil, fmt.Errorf("retrieving: %w", err)
		}
	}
	for {
		texts := make([]string, len(passages))
		for i, p := range passages {
			texts[i] = p.Text
		}
		prefix, err := t.ContextPrefix(texts)
		if err != nil {
			return Sample{}, nil, err
		}
		context := t.WrapChat(prefix + prompt)
		ids := opt.Encoder.encode(context)
		if len(ids) == 0 {
			ids = []int32{opt.Encoder.BOS}
		}
		if room > 0 && len(ids) > room && len(passages) > 0 {
			passages = passages[:len(passages)-1]
			s.PassagesCut++
			continue
		}
		s.Prompt, s.ContextTokenIDs = context, ids
		if room > 0 && len(ids) > room {
			s.TruncatedTokens = len(ids) - room
			ids = ids[s.TruncatedTokens:]
		}
		if opt.Retriever != nil {
			s.Retrieved = []string{}
			for _, p := range passages {
				s.Retrieved = append(s.Retrieved, p.ID)
			}
			if q.ChunkID != "" {
				hit := slices.Contains(s.Retrieved, q.ChunkID)
				s.ChunkRecalled = &hit
			}
		}
		return s, ids, nil
	}
}

// evaluateRecall generates every question's answer greedily (a generation per distinct prompt,
// read from the cache when there) and scores it.
func evaluateRecall(questions []curriculum.Question, opt Options) (*Run, error) {
	g := opt.Generation
	if g == nil || g.Generator == nil || g.Decoder == nil || len(g.StopTokens) == 0 {
		return nil, fmt.Errorf("evaluation: task %s generates its answers: Options.Generation needs a Generator (the lm.Model), a Decoder (its tokenizer) and StopTokens (its EOS)", opt.Task.Name)
	}
	kw := opt.Task.GenerationKwargs
	run := &Run{Task: opt.Task, Options: opt, Samples: make([]Sample, len(questions))}
	prompts := make([][]int32, len(questions))
	keys := make([]string, len(questions))
	for i := range questions {
		q := &questions[i]
		if err := q.Validate(); err != nil {
			return nil, fmt.Errorf("evaluation: question %d: %w", i, err)
		}
		s, ids, err := buildRecallSample(q, opt)
		if err != nil {
			return nil, fmt.Errorf("evaluation: question %d (%s): %w", i, q.ID, err)
		}
		s.DocID = i
		run.Samples[i], prompts[i] = s, ids
		keys[i] = GenerationKey(opt.ModelKey, ids, kw.MaxGenToks, g.StopTokens, kw.Until)
	}
	generated := map[string][]int32{}
	var todo []int // first question of each distinct prompt not in the cache
	for i, k := range keys {
		if _, seen := generated[k]; seen {
			continue
		}
		generated[k] = nil
		run.Requests++
		if opt.Cache != nil {
			if ids, ok := opt.Cache.GetGeneration(k); ok {
				generated[k] = ids
				run.Cached++
				continue
			}
		}
		todo = append(todo, i)
	}
	var bar *progressbar.ProgressBar
	if opt.Progress != nil && len(todo) > 0 {
		bar = progressbar.NewOptions(len(todo), progressbar.OptionSetWriter(opt.Progress),
			progressbar.OptionSetDescription(opt.Task.Name), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("answer"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(0),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(opt.Progress) }))
		_ = bar.RenderBlank()
	}
	chunk := max(1, opt.BatchSize) // questions between cache writes
	for start := 0; start < len(todo); start += chunk {
		part := todo[start:min(start+chunk, len(todo))]
		var putKeys []string
		var putIDs [][]int32
		for _, i := range part {
			var ids []int32
			out, err := g.Generator.Generate(prompts[i], lm.GenerateOptions{MaxNewTokens: kw.MaxGenToks, StopTokens: g.StopTokens,
				OnToken: func(id int32) bool {
					ids = append(ids, id)
					_, _, _, done := cutAnswer(ids, g.Decoder, g.StopTokens, kw.Until)
					return !done
				}})
			if err != nil {
				return nil, fmt.Errorf("evaluation: question %d (%s): generating: %w", i, questions[i].ID, err)
			}
			generated[keys[i]] = out
			putKeys, putIDs = append(putKeys, keys[i]), append(putIDs, out)
		}
		if opt.Cache != nil {
			if err := opt.Cache.PutGenerations(putKeys, putIDs); err != nil {
				return nil, err
			}
		}
		if bar != nil {
			_ = bar.Add(len(part))
		}
	}
	for i := range run.Samples {
		scoreRecall(&run.Samples[i], generated[keys[i]], g, kw.Until)
	}
	return run, nil
}

// scoreRecall fills a recall sample from its generated ids: the answer, how it ended, the
// normalised forms and both scores. acc (and acc_norm, acc_bytes: there is no length to normalise
// by) is the exact match.
func scoreRecall(s *Sample, ids []int32, g *Generation, until []string) {
	r := s.Recall
	r.TokenIDs = ids
	r.Generated, r.Stopped, r.StopString, _ = cutAnswer(ids, g.Decoder, g.StopTokens, until)
	r.NormalizedGenerated, r.NormalizedGold = NormalizeAnswer(r.Generated), NormalizeAnswer(r.Gold)
	r.ExactMatch = b2f(ExactMatch(r.Generated, r.Gold))
	r.Contains = b2f(ContainsAnswer(r.Generated, r.Gold))
	s.Acc, s.AccNorm, s.AccBytes = r.ExactMatch, r.ExactMatch, r.ExactMatch
}
