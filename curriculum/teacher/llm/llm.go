// Package llm is the teacher that asks a language model to write flashcards and multiple-choice
// questions, over any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp
// server, Ollama, ...). It uses net/http directly: one POST with a JSON body is all it needs,
// and a client library would add a dependency without removing any of the work below.
//
// What it does for a long, paid run:
//   - bounded concurrency (Config.Concurrency requests in flight);
//   - retries with exponential backoff and jitter on 429, 5xx, network errors and timeouts,
//     honouring Retry-After; 401/403 stop the run (a wrong key will not fix itself);
//   - a disk cache keyed by SHA-256 of model, prompt version and the full prompt (which includes
//     the chunk), so an interrupted run resumes without paying twice for finished chunks;
//   - token and cost accounting from the responses' usage fields;
//   - strict validation: malformed JSON, a wrong number of distractors, a distractor equal to the
//     answer, empty fields: rejected and counted by reason, never written; the chunk is asked
//     again (Config.Reasks times) with the reasons added to the prompt, and only a valid reply
//     is cached;
//   - chunks that get no facts at all (requests that keep failing, replies that stay invalid)
//     are reported by Facts as a *PartialError naming each, so a build cannot silently lack them;
//   - optional paraphrases of every flashcard (augmentation).
//
// The API key comes from the environment and never appears in logs, errors or the manifest.
package llm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/perpetual-ml/perpetual/curriculum"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvBaseURL = "PERPETUAL_LLM_BASE_URL" // e.g. https://api.openai.com/v1 (falls back to OPENAI_BASE_URL)
	EnvModel   = "PERPETUAL_LLM_MODEL"    // e.g. gpt-4o-mini
	EnvAPIKey  = "PERPETUAL_LLM_API_KEY"  // falls back to OPENAI_API_KEY
)

// PromptVersion is part of every cache key: change it when the prompt changes meaning.
const PromptVersion = "perpetual-flashcards-v1"

// Defaults of ConfigFromEnv.
const (
	// DefaultTimeout is the time allowed to one request attempt.
	DefaultTimeout = 120 * time.Second
	// DefaultReasks is how many times a chunk whose reply was invalid is asked again.
	DefaultReasks = 2
)

// Config configures the teacher.
type Config struct {
	BaseURL, Model string
	// APIKey is sent as a bearer token; never printed.
	APIKey string
	// Concurrency is the number of requests in flight (default 4).
	Concurrency int
	// MaxRetries per request after the first attempt (default 5).
	MaxRetries int
	// Timeout per attempt (0: DefaultTimeout).
	Timeout time.Duration
	// Reasks is how many times a chunk is asked again after an invalid reply (malformed or
	// truncated JSON, no facts, a flashcard rejected by validation), each time with the reasons
	// for the rejection added to the prompt. 0 means never; ConfigFromEnv sets DefaultReasks.
	Reasks int
	// BackoffBase is the first retry delay, doubled each retry (default 1 s).
	BackoffBase time.Duration
	// CacheDir holds one file per answered prompt; empty disables the cache.
	CacheDir string
	// Flashcards per chunk, 3 to 5 (default 4).
	Flashcards int
	// Paraphrases per flashcard (default 0).
	Paraphrases int
	// PromptUSDPerMTok and CompletionUSDPerMTok price the tokens for cost accounting.
	PromptUSDPerMTok, CompletionUSDPerMTok float64
	// JSONSchema sends response_format with a JSON schema (structured outputs); turn it off for
	// servers that reject it — the answer is validated either way.
	JSONSchema bool
	// HTTPClient overrides the client (tests).
	HTTPClient *http.Client
}

// ConfigFromEnv reads base URL, model and key from the environment; the other fields get their
// defaults (DefaultTimeout, DefaultReasks, structured outputs on).
func ConfigFromEnv() Config {
	c := Config{BaseURL: os.Getenv(EnvBaseURL), Model: os.Getenv(EnvModel), APIKey: os.Getenv(EnvAPIKey), JSONSchema: true,
		Timeout: DefaultTimeout, Reasks: DefaultReasks}
	if c.BaseURL == "" {
		c.BaseURL = os.Getenv("OPENAI_BASE_URL")
	}
	if c.APIKey == "" {
		c.APIKey = os.Getenv("OPENAI_API_KEY")
	}
	return c
}

// Teacher writes facts with a language model. Safe for one Facts call at a time.
type Teacher struct {
	cfg   Config
	mu    sync.Mutex
	usage curriculum.Usage
}

// New checks the configuration.
func New(cfg Config) (*Teacher, error) {
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("llm teacher: no endpoint: set %s (e.g. https://api.openai.com/v1)", EnvBaseURL)
	}
	if cfg.Model == "" {
		return nil, fmt.Errorf("llm teacher: no model: set %s", EnvModel)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("llm teacher: negative timeout %v", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Reasks < 0 {
		return nil, fmt.Errorf("llm teacher: negative number of re-asks %d", cfg.Reasks)
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.Flashcards <= 0 {
		cfg.Flashcards = 4
	}
	cfg.Flashcards = min(5, max(3, cfg.Flashcards))
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Teacher{cfg: cfg, usage: curriculum.Usage{Rejected: map[string]int{}}}, nil
}

// Name is the teacher's name for the manifest ("llm:<model>").
func (t *Teacher) Name() string { return "llm:" + t.cfg.Model }

// Usage returns the accounting so far.
func (t *Teacher) Usage() curriculum.Usage {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.usage
	u.Rejected = map[string]int{}
	for k, v := range t.usage.Rejected {
		u.Rejected[k] = v
	}
	return u
}

func (t *Teacher) reject(reason string, n int) {
	t.mu.Lock()
	t.usage.Rejected[reason] += n
	t.mu.Unlock()
}

const systemPrompt = `You write study material from a document. Reply with JSON only.`

// userPrompt asks for a chunk's facts. rejected, when not empty, explains why the previous reply
// was refused (a re-ask); it goes before the document.
func (t *Teacher) userPrompt(ch curriculum.Chunk, rejected string) string {
	para := ""
	if t.cfg.Paraphrases > 0 {
		para = fmt.Sprintf(` Also give exactly %d paraphrases of each flashcard (same fact, different wording) in "paraphrases".`, t.cfg.Paraphrases)
	}
	again := ""
	if rejected != "" {
		again = "\nYour previous reply to this request was rejected: " + rejected + ". Reply again with the complete JSON, every fact valid.\n"
	}
	return fmt.Sprintf(`Write exactly %d facts stated in the document below. For each fact give:
- "question" and "answer": a flashcard; the answer is a full sentence.
- "test_question": a multiple-choice question on the same fact, worded differently from the flashcard.
- "correct": the short correct option; "distractors": exactly 3 wrong options of the same type and length (other names for a name, other numbers for a number), plausible but false according to the document.%s
Use only facts stated in the document. JSON shape: {"facts":[{"question":"","answer":"","test_question":"","correct":"","distractors":["","",""],"paraphrases":[{"question":"","answer":""}]}]}
%s
Document (%s):
%s`, t.cfg.Flashcards, para, again, ch.Title, ch.Text)
}

func schema() map[string]any {
	str := map[string]any{"type": "string"}
	qa := map[string]any{"type": "object", "properties": map[string]any{"question": str, "answer": str},
		"required": []string{"question", "answer"}, "additionalProperties": false}
	fact := map[string]any{"type": "object", "properties": map[string]any{
		"question": str, "answer": str, "test_question": str, "correct": str,
		"distractors": map[string]any{"type": "array", "items": str},
		"paraphrases": map[string]any{"type": "array", "items": qa},
	}, "required": []string{"question", "answer", "test_question", "correct", "distractors", "paraphrases"}, "additionalProperties": false}
	return map[string]any{"type": "object", "properties": map[string]any{"facts": map[string]any{"type": "array", "items": fact}},
		"required": []string{"facts"}, "additionalProperties": false}
}

// reply is what the model is asked to return.
type reply struct {
	Facts []struct {
		Question     string          `json:"question"`
		Answer       string          `json:"answer"`
		TestQuestion string          `json:"test_question"`
		Correct      string          `json:"correct"`
		Distractors  []string        `json:"distractors"`
		Paraphrases  []curriculum.QA `json:"paraphrases"`
	} `json:"facts"`
}

// cached is one answered prompt on disk.
type cached struct {
	Content          string `json:"content"`
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`
}

// PartialError is Facts' error when some chunks got no facts: their requests kept failing (or
// were refused, e.g. HTTP 400), or every reply stayed invalid after Config.Reasks re-asks. The
// facts of the other chunks are returned with it.
type PartialError struct {
	// Failed lists the chunks in chunk order.
	Failed []curriculum.ChunkFailure
	// Chunks is the number of chunks asked about.
	Chunks int
}

func (e *PartialError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "llm teacher: no facts for %d of %d chunks: ", len(e.Failed), e.Chunks)
	for i, f := range e.Failed {
		if i == 10 {
			fmt.Fprintf(&b, "; ... and %d more", len(e.Failed)-10)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s (%s)", f.ChunkID, f.Reason)
	}
	return b.String()
}

// Facts asks for facts about every chunk, cache first, Concurrency requests at a time. done is
// called after each chunk (progress). Chunks whose request finally fails are counted as rejected
// ("request_failed") and the run goes on; an authentication failure or a cancelled context stops
// it. Facts come back in chunk order. When some chunks got no facts (requests failed, replies
// invalid after re-asks) the error is a *PartialError naming them, returned with the facts of
// the other chunks: the caller decides whether a partial result is acceptable.
func (t *Teacher) Facts(ctx context.Context, chunks []curriculum.Chunk, done func()) ([]curriculum.Fact, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([][]curriculum.Fact, len(chunks))
	failed := make([]string, len(chunks)) // reason, per chunk that got no facts
	sem := make(chan struct{}, t.cfg.Concurrency)
	var wg sync.WaitGroup
	var fatalMu sync.Mutex
	var fatal error
	for i := range chunks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			facts, err := t.chunkFacts(ctx, chunks[i])
			if err != nil {
				var fe *fatalError
				if errors.As(err, &fe) || ctx.Err() != nil {
					fatalMu.Lock()
					if fatal == nil {
						fatal = err
					}
					fatalMu.Unlock()
					cancel()
					return
				}
				var ie *invalidError
				if !errors.As(err, &ie) {
					t.reject("request_failed", 1)
				}
				failed[i] = err.Error()
			}
			results[i] = facts
			if done != nil {
				done()
			}
		}(i)
	}
	wg.Wait()
	if fatal != nil {
		return nil, fatal
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []curriculum.Fact
	for _, r := range results {
		out = append(out, r...)
	}
	partial := &PartialError{Chunks: len(chunks)}
	for i, reason := range failed {
		if reason != "" {
			partial.Failed = append(partial.Failed, curriculum.ChunkFailure{ChunkID: chunks[i].ID, Reason: reason})
		}
	}
	if len(partial.Failed) > 0 {
		return out, partial
	}
	return out, nil
}

// invalidError is a chunk whose replies all stayed invalid.
type invalidError struct{ err error }

func (e *invalidError) Error() string { return e.err.Error() }

type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func (t *Teacher) cacheKey(prompt string) string {
	h := sha256.Sum256([]byte(t.cfg.Model + "\x00" + PromptVersion + "\x00" + systemPrompt + "\x00" + prompt))
	return hex.EncodeToString(h[:])
}

// chunkFacts returns a chunk's facts: from the cache when it holds a valid reply, else asked,
// and asked again (Config.Reasks times) while the reply is invalid, with the reasons in the
// prompt. Only a valid reply is cached: an invalid one would be rejected again by every rerun.
// When every reply stays invalid, the facts that passed validation in the best reply are
// returned (not cached); with none, an *invalidError.
func (t *Teacher) chunkFacts(ctx context.Context, ch curriculum.Chunk) ([]curriculum.Fact, error) {
	prompt := t.userPrompt(ch, "")
	key := t.cacheKey(prompt)
	var path string
	if t.cfg.CacheDir != "" {
		path = filepath.Join(t.cfg.CacheDir, key[:2], key+".json")
		if b, err := os.ReadFile(path); err == nil {
			var c cached
			if json.Unmarshal(b, &c) == nil {
				// A reply cached by an older version may be invalid: then it is asked again.
				if facts, invalid, notes := t.validate(ch, c.Content); len(invalid) == 0 {
					t.mu.Lock()
					t.usage.CacheHits++
					t.mu.Unlock()
					t.count(notes)
					return facts, nil
				}
			}
		}
	}
	var best []curriculum.Fact
	var reasons []string
	ask := prompt
	for attempt := 0; attempt <= t.cfg.Reasks; attempt++ {
		if attempt > 0 {
			t.mu.Lock()
			t.usage.Reasks++
			t.mu.Unlock()
			ask = t.userPrompt(ch, strings.Join(reasons, "; "))
		}
		c, err := t.complete(ctx, ask)
		if err != nil {
			if len(best) > 0 && !isFatal(ctx, err) {
				return best, nil // a re-ask failed: keep what the earlier reply gave
			}
			return nil, err
		}
		facts, invalid, notes := t.validate(ch, c.Content)
		t.count(invalid)
		t.count(notes)
		if len(invalid) == 0 {
			if path != "" {
				if err := writeAtomic(path, c); err != nil {
					return nil, &fatalError{fmt.Errorf("llm cache: %w", err)}
				}
			}
			return facts, nil
		}
		if len(facts) > len(best) {
			best = facts
		}
		reasons = reasons[:0]
		for _, p := range invalid {
			reasons = append(reasons, p.detail)
		}
	}
	if len(best) > 0 {
		return best, nil
	}
	return nil, &invalidError{fmt.Errorf("no valid reply in %d asks; the last was rejected: %s", t.cfg.Reasks+1, strings.Join(reasons, "; "))}
}

// isFatal says whether err stops the whole run (authentication, cache, cancelled context).
func isFatal(ctx context.Context, err error) bool {
	var fe *fatalError
	return errors.As(err, &fe) || ctx.Err() != nil
}

// problem is one reason a reply or a fact was rejected: reason is the counter's name, detail
// what the model is told on a re-ask.
type problem struct{ reason, detail string }

// count adds problems to the rejection counters.
func (t *Teacher) count(ps []problem) {
	for _, p := range ps {
		t.reject(p.reason, 1)
	}
}

// writeAtomic stores v as JSON through the project's atomic write.
func writeAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}

// validate parses the model's content and keeps only well-formed facts. invalid lists what makes
// the reply invalid (it is asked again); notes what was dropped from an otherwise valid reply
// (facts beyond the number asked for, missing paraphrases). Counting is the caller's.
func (t *Teacher) validate(ch curriculum.Chunk, content string) (out []curriculum.Fact, invalid, notes []problem) {
	content = strings.TrimSpace(content)
	// Some servers wrap JSON in a Markdown fence despite the instructions.
	if strings.HasPrefix(content, "```") {
		content = strings.TrimPrefix(strings.TrimPrefix(content, "```json"), "```")
		content = strings.TrimSuffix(strings.TrimSpace(content), "```")
	}
	var r reply
	if err := json.Unmarshal([]byte(content), &r); err != nil {
		return nil, []problem{{"malformed_json", fmt.Sprintf("it was not valid JSON of the requested shape (%v)", err)}}, nil
	}
	if len(r.Facts) == 0 {
		return nil, []problem{{"no_facts", `it had no facts in "facts"`}}, nil
	}
	for i, f := range r.Facts {
		if i >= t.cfg.Flashcards {
			for range len(r.Facts) - i {
				notes = append(notes, problem{"too_many_facts", ""})
			}
			break
		}
		blank := func(s string) bool { return strings.TrimSpace(s) == "" }
		switch {
		case blank(f.Question) || blank(f.Answer) || blank(f.TestQuestion) || blank(f.Correct):
			invalid = append(invalid, problem{"empty_field", fmt.Sprintf("fact %d has an empty question, answer, test_question or correct", i+1)})
			continue
		case len(f.Distractors) != 3:
			invalid = append(invalid, problem{"wrong_number_of_choices", fmt.Sprintf("fact %d has %d distractors, not exactly 3", i+1, len(f.Distractors))})
			continue
		}
		ok := true
		seen := map[string]bool{norm(f.Correct): true}
		for _, d := range f.Distractors {
			if blank(d) || seen[norm(d)] {
				ok = false
				break
			}
			seen[norm(d)] = true
		}
		if !ok {
			invalid = append(invalid, problem{"answer_among_distractors_or_duplicate",
				fmt.Sprintf("fact %d has an empty distractor, a distractor equal to the correct option, or two equal distractors", i+1)})
			continue
		}
		var paras []curriculum.QA
		for _, p := range f.Paraphrases {
			if !blank(p.Question) && !blank(p.Answer) {
				paras = append(paras, p)
			}
		}
		if t.cfg.Paraphrases > 0 && len(paras) < t.cfg.Paraphrases {
			notes = append(notes, problem{"missing_paraphrases", ""})
		}
		if len(paras) > t.cfg.Paraphrases {
			paras = paras[:t.cfg.Paraphrases]
		}
		out = append(out, curriculum.Fact{ChunkID: ch.ID, Question: strings.TrimSpace(f.Question), Answer: strings.TrimSpace(f.Answer),
			TestQuestion: strings.TrimSpace(f.TestQuestion), TestAnswer: strings.TrimSpace(f.Correct), Distractors: f.Distractors, Paraphrases: paras})
	}
	return out, invalid, notes
}

func norm(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// complete sends one chat completion with retries and returns the message content and usage.
func (t *Teacher) complete(ctx context.Context, prompt string) (cached, error) {
	body := map[string]any{
		"model":       t.cfg.Model,
		"temperature": 0.2,
		"messages": []map[string]string{
			{"role": "system", "content": systemPrompt},
			{"role": "user", "content": prompt},
		},
	}
	if t.cfg.JSONSchema {
		body["response_format"] = map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "facts", "strict": true, "schema": schema()}}
	}
	payload, _ := json.Marshal(body)
	url := t.cfg.BaseURL + "/chat/completions"
	var lastErr error
	for attempt := 0; attempt <= t.cfg.MaxRetries; attempt++ {
		if attempt > 0 {
			t.mu.Lock()
			t.usage.Retries++
			t.mu.Unlock()
		}
		c, retryAfter, err := t.attempt(ctx, url, payload)
		if err == nil {
			return c, nil
		}
		lastErr = err
		var fe *fatalError
		if errors.As(err, &fe) || ctx.Err() != nil {
			return cached{}, err
		}
		var pe *permanentError
		if errors.As(err, &pe) {
			return cached{}, err
		}
		if attempt == t.cfg.MaxRetries {
			break
		}
		wait := t.cfg.BackoffBase << attempt
		wait += time.Duration(rand.Int64N(int64(wait)/2 + 1)) // jitter spreads simultaneous retries
		if retryAfter > wait {
			wait = retryAfter
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return cached{}, ctx.Err()
		}
	}
	return cached{}, fmt.Errorf("llm teacher: %s: gave up after %d attempts: %w", url, t.cfg.MaxRetries+1, lastErr)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (t *Teacher) attempt(ctx context.Context, url string, payload []byte) (cached, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return cached{}, 0, &fatalError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	if t.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+t.cfg.APIKey)
	}
	t.mu.Lock()
	t.usage.Requests++
	t.mu.Unlock()
	resp, err := t.cfg.HTTPClient.Do(req)
	if err != nil {
		// Network errors and timeouts are retried; the message has the URL, never the key.
		return cached{}, 0, fmt.Errorf("request failed: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return cached{}, 0, fmt.Errorf("reading response: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return cached{}, 0, &fatalError{fmt.Errorf("llm teacher: %s: %s (check %s)", url, resp.Status, EnvAPIKey)}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		var ra time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			ra = time.Duration(s) * time.Second
		}
		return cached{}, ra, fmt.Errorf("%s", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return cached{}, 0, &permanentError{fmt.Errorf("llm teacher: %s: %s: %s", url, resp.Status, snippet(data))}
	}
	var r struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(data, &r); err != nil || len(r.Choices) == 0 {
		return cached{}, 0, fmt.Errorf("malformed chat completion: %s", snippet(data))
	}
	t.mu.Lock()
	t.usage.PromptTokens += r.Usage.PromptTokens
	t.usage.CompletionTokens += r.Usage.CompletionTokens
	t.usage.CostUSD += (float64(r.Usage.PromptTokens)*t.cfg.PromptUSDPerMTok + float64(r.Usage.CompletionTokens)*t.cfg.CompletionUSDPerMTok) / 1e6
	t.mu.Unlock()
	return cached{Content: r.Choices[0].Message.Content, PromptTokens: r.Usage.PromptTokens, CompletionTokens: r.Usage.CompletionTokens}, 0, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
