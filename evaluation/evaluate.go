// Package evaluation scores language models on multiple-choice tests the way EleutherAI's
// lm-evaluation-harness does (multiple_choice output type), so numbers are comparable with the
// paper's: tasks are data (task.go, embedded YAML), prompts are encoded with the harness's
// _encode_pair rules (request.go), requests are deduplicated, sorted by length and scored through
// a Scorer (lm.Model) with a resumable on-disk cache (cache.go), and results are written as the
// harness's results JSON and --log_samples JSONL (output.go), with Perpetual's extras: Wilson
// intervals, per-kind breakdowns, chance and always-letter baselines, retrieval records and paired
// comparisons between conditions (evaluation/stats).
//
// The recall formulation (recall.go, a generate_until task) asks the question without its options
// and generates a greedy answer through a Generator (lm.Model's cached decoding), scored by
// SQuAD-normalised exact match and containment of the gold choice's text, with the same intervals
// and paired tests.
//
// Retrieved context (RAG) is prepended before the prompt. It is never silently truncated: when
// the prompt and the longest choice do not fit the model window, whole passages are dropped from
// the lowest-ranked up until they fit, and each sample records the chunk ids used and how many
// were cut. Only when no passage is left does the harness's left truncation apply (counted too).
//
// The progress bar is github.com/schollz/progressbar/v3 (count, rate and ETA on a terminal or log).
package evaluation

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Options configure an evaluation run.
type Options struct {
	// Task defines prompt, choices and formulation.
	Task *Task
	// Encoder tokenizes requests (tokenizer, BOS rule, model window).
	Encoder Encoder
	// Scorer computes log-likelihoods (an lm.Model).
	Scorer Scorer
	// ModelKey identifies the model for the cache (lm.Model.Hash()); required with Cache.
	ModelKey string
	// Model is a human name recorded in results.json.
	Model string
	// BatchSize is passed to the scorer (default 1).
	BatchSize int
	// Cache, when set, is read before scoring and appended to after each chunk of requests.
	Cache *Cache
	// Retriever, when set, prepends the top K passages for each question.
	Retriever Retriever
	// K is the number of passages to retrieve (default 3).
	K int
	// Limit evaluates only the first Limit questions (0 = all).
	Limit int
	// Progress receives a progress bar (nil = none).
	Progress io.Writer
	// Generation generates the answers of a generate_until task (the recall formulation);
	// multiple-choice tasks do not use it.
	Generation *Generation
	// ChunkRequests is how many requests go to the scorer between cache writes (default 64 x BatchSize).
	ChunkRequests int
}

// Sample is one question's record, the --log_samples line. A recall sample (generate_until) has
// no choices, arguments, log-likelihoods or continuation tokens; its Recall holds the generated
// answer, its Prediction and PredNorm are -1, and Acc, AccNorm and AccBytes are the exact match.
type Sample struct {
	DocID    int                 `json:"doc_id"`
	Doc      curriculum.Question `json:"doc"`
	Target   int                 `json:"target"`
	Prompt   string              `json:"prompt"`
	Choices  []string            `json:"choices,omitempty"`
	Args     [][2]string         `json:"arguments,omitempty"`
	LogLiks  []float64           `json:"loglikelihoods,omitempty"`
	IsGreedy []bool              `json:"is_greedy,omitempty"`
	// ContTokens is the number of continuation tokens per choice.
	ContTokens []int   `json:"continuation_tokens,omitempty"`
	Prediction int     `json:"prediction"`
	PredNorm   int     `json:"prediction_norm"`
	Gold       int     `json:"gold"`
	Acc        float64 `json:"acc"`
	AccNorm    float64 `json:"acc_norm"`
	AccBytes   float64 `json:"acc_bytes"`
	Kind       string  `json:"kind"`
	// Recall is the generated answer and its scores (recall formulation only).
	Recall *RecallAnswer `json:"recall,omitempty"`
	// Retrieved lists the chunk ids placed in the prompt, best first.
	Retrieved []string `json:"retrieved,omitempty"`
	// PassagesCut counts retrieved passages dropped to fit the window.
	PassagesCut int `json:"passages_cut,omitempty"`
	// TruncatedTokens counts prompt tokens the harness's left truncation removed (max over choices).
	TruncatedTokens int `json:"truncated_tokens,omitempty"`
	// ContextTokenIDs is the context's encoding (BOS included when added) before left truncation,
	// once for all choices (for recall: the prompt, of which the model read the last
	// len - TruncatedTokens ids): choice c's request is ContextTokenIDs[t:] + ContinuationTokenIDs[c],
	// t = max(0, len(ContextTokenIDs) + len(ContinuationTokenIDs[c]) - (max_length+1)) (0 without
	// a window; max_length is results.json's config).
	ContextTokenIDs []int32 `json:"context_token_ids,omitempty"`
	// ContinuationTokenIDs are each choice's continuation tokens.
	ContinuationTokenIDs [][]int32 `json:"continuation_token_ids,omitempty"`
	// ChunkRecalled is true when the question's source chunk was among the retrieved ones.
	ChunkRecalled *bool `json:"chunk_recalled,omitempty"`
}

// Run is the outcome of one evaluation.
type Run struct {
	Task     *Task
	Options  Options
	Samples  []Sample
	Requests int // unique requests
	Cached   int // of which answered from the cache
}

type instance struct {
	sample int
	choice int
	key    string
	pair   Pair
}

// Evaluate scores questions with opt.Task and returns per-sample records: the choices'
// log-likelihoods for a multiple-choice task, a greedy answer (opt.Generation) for a
// generate_until task.
func Evaluate(questions []curriculum.Question, opt Options) (*Run, error) {
	if opt.Task == nil || opt.Encoder.Tokenizer == nil || (opt.Scorer == nil && !opt.Task.Generates()) {
		return nil, fmt.Errorf("evaluation: Task, Scorer (Generation for a generate_until task) and Encoder.Tokenizer are required")
	}
	if opt.Cache != nil && opt.ModelKey == "" {
		return nil, fmt.Errorf("evaluation: a cache needs ModelKey (the model hash)")
	}
	if opt.BatchSize < 1 {
		opt.BatchSize = 1
	}
	if opt.K < 1 {
		opt.K = 3
	}
	if opt.ChunkRequests < 1 {
		opt.ChunkRequests = 64 * opt.BatchSize
	}
	if opt.Limit > 0 && opt.Limit < len(questions) {
		questions = questions[:opt.Limit]
	}
	if opt.Task.Generates() {
		return evaluateRecall(questions, opt)
	}
	run := &Run{Task: opt.Task, Options: opt, Samples: make([]Sample, len(questions))}
	var insts []instance
	for i := range questions {
		q := &questions[i]
		if err := q.Validate(); err != nil {
			return nil, fmt.Errorf("evaluation: question %d: %w", i, err)
		}
		s, pairs, err := buildSample(q, opt)
		if err != nil {
			return nil, fmt.Errorf("evaluation: question %d (%s): %w", i, q.ID, err)
		}
		s.DocID = i
		run.Samples[i] = s
		for c, p := range pairs {
			insts = append(insts, instance{sample: i, choice: c, pair: p, key: CacheKey(opt.ModelKey, p.Request)})
		}
	}
	results, err := scoreAll(insts, opt, run)
	if err != nil {
		return nil, err
	}
	for _, in := range insts {
		s := &run.Samples[in.sample]
		r := results[in.key]
		s.LogLiks[in.choice] = r.LogProb
		s.IsGreedy[in.choice] = r.IsGreedy
		s.ContTokens[in.choice] = r.NumTokens
	}
	for i := range run.Samples {
		score(&run.Samples[i])
	}
	return run, nil
}

// buildSample renders the prompt (with retrieved context fitted to the window) and encodes one
// request per choice.
func buildSample(q *curriculum.Question, opt Options) (Sample, []Pair, error) {
	t := opt.Task
	prompt, err := t.Prompt(q)
	if err != nil {
		return Sample{}, nil, err
	}
	choices := t.Choices(q)
	s := Sample{Doc: *q, Target: q.Answer, Gold: q.Answer, Choices: choices, Kind: q.Kind,
		LogLiks: make([]float64, len(choices)), IsGreedy: make([]bool, len(choices)), ContTokens: make([]int, len(choices))}
	if q.Answer >= len(choices) {
		return Sample{}, nil, fmt.Errorf("answer %d but the task scores %d choices", q.Answer, len(choices))
	}
	var passages []Passage
	if opt.Retriever != nil {
		passages, err = opt.Retriever.Retrieve(q.Question, opt.K)
		if err != nil {
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
		pairs := make([]Pair, len(choices))
		truncated := 0
		args := make([][2]string, len(choices))
		for c, ch := range choices {
			cont := t.ContinuationDelimiter() + ch
			args[c] = [2]string{context, cont}
			if pairs[c], err = opt.Encoder.EncodePair(context, cont); err != nil {
				return Sample{}, nil, err
			}
			truncated = max(truncated, pairs[c].Truncated)
		}
		if truncated > 0 && len(passages) > 0 {
			// The stated rule: drop the lowest-ranked passage and try again.
			passages = passages[:len(passages)-1]
			s.PassagesCut++
			continue
		}
		s.Prompt, s.Args, s.TruncatedTokens = context, args, truncated
		s.ContinuationTokenIDs = make([][]int32, len(pairs))
		for c, p := range pairs {
			s.ContinuationTokenIDs[c] = slices.Clip(slices.Clone(p.Continuation)) // not the whole encoding's array
		}
		if len(pairs) > 0 {
			s.ContextTokenIDs = pairs[0].FullContext // one context string, one encoding
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
		return s, pairs, nil
	}
}

// scoreAll scores the unique requests missing from the cache, longest first (as the harness
// orders them), so requests sharing a context sit next to each other in a batch.
func scoreAll(insts []instance, opt Options, run *Run) (map[string]Result, error) {
	results := map[string]Result{}
	var todo []instance
	seen := map[string]bool{}
	for _, in := range insts {
		if seen[in.key] {
			continue
		}
		seen[in.key] = true
		run.Requests++
		if opt.Cache != nil {
			if r, ok := opt.Cache.Get(in.key); ok {
				results[in.key] = r
				run.Cached++
				continue
			}
		}
		todo = append(todo, in)
	}
	sort.SliceStable(todo, func(i, j int) bool {
		a, b := todo[i].pair.Request, todo[j].pair.Request
		la, lb := len(a.Context)+len(a.Continuation), len(b.Context)+len(b.Continuation)
		if la != lb {
			return la > lb
		}
		if c := slices.Compare(a.Context, b.Context); c != 0 {
			return c < 0
		}
		return slices.Compare(a.Continuation, b.Continuation) < 0
	})
	var bar *progressbar.ProgressBar
	if opt.Progress != nil && len(todo) > 0 {
		bar = progressbar.NewOptions(len(todo), progressbar.OptionSetWriter(opt.Progress),
			progressbar.OptionSetDescription(opt.Task.Name), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("req"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(0),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(opt.Progress) }))
		_ = bar.RenderBlank() // start the clock now, not at the first update (rates and ETA)
	}
	for start := 0; start < len(todo); start += opt.ChunkRequests {
		chunk := todo[start:min(start+opt.ChunkRequests, len(todo))]
		reqs := make([]Request, len(chunk))
		keys := make([]string, len(chunk))
		for i, in := range chunk {
			reqs[i], keys[i] = in.pair.Request, in.key
		}
		res, err := opt.Scorer.LogLikelihood(reqs, opt.BatchSize)
		if err != nil {
			return nil, fmt.Errorf("evaluation: scoring: %w", err)
		}
		if len(res) != len(reqs) {
			return nil, fmt.Errorf("evaluation: scorer returned %d results for %d requests", len(res), len(reqs))
		}
		for i, r := range res {
			if math.IsNaN(r.LogProb) || r.LogProb > 1e-6 {
				return nil, fmt.Errorf("evaluation: scorer returned log-probability %v", r.LogProb)
			}
			results[keys[i]] = r
		}
		if opt.Cache != nil {
			if err := opt.Cache.Put(keys, res); err != nil {
				return nil, err
			}
		}
		if bar != nil {
			_ = bar.Add(len(chunk))
		}
	}
	return results, nil
}

// score fills prediction and the three accuracies as lm-evaluation-harness's process_results:
// argmax of the log-likelihoods (first on ties, as numpy), normalised by the choice's length in
// characters (acc_norm) or UTF-8 bytes (acc_bytes). The length is of the choice string itself,
// without the target delimiter.
func score(s *Sample) {
	n := len(s.Choices)
	norm := make([]float64, n)
	byt := make([]float64, n)
	for i, ch := range s.Choices {
		norm[i] = s.LogLiks[i] / float64(utf8.RuneCountInString(ch))
		byt[i] = s.LogLiks[i] / float64(len(ch))
	}
	s.Prediction = argmax(s.LogLiks)
	s.PredNorm = argmax(norm)
	s.Acc = b2f(s.Prediction == s.Gold)
	s.AccNorm = b2f(s.PredNorm == s.Gold)
	s.AccBytes = b2f(argmax(byt) == s.Gold)
}

func argmax(xs []float64) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := newJSONEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
