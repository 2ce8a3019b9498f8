package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perpetual-ml/perpetual/curriculum"
)

const testKey = "sk-test-SECRET-123"

// fakeServer speaks the chat-completions protocol. The chunk text decides the behaviour:
// "RATE" answers 429 once, "ERR" 500 twice, "SLOW" stalls past the timeout once, "BAD" returns
// text that is not JSON, "CHOICES" a fact with 2 distractors, "DUP" a distractor equal to the
// answer, "FOREVER" 503 every time, "DENY" 401, "REFUSE" 400. "FLAKY" returns truncated JSON
// and "TWODIST" a fact with 2 distractors until the prompt says the previous reply was rejected.
type fakeServer struct {
	mu        sync.Mutex
	seen      map[string]int
	prompts   []string
	requests  atomic.Int64
	inFlight  atomic.Int64
	maxFlight atomic.Int64
	t         *testing.T
}

func (s *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxFlight.Load()
		if n <= m || s.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond) // let requests overlap
	if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer "+testKey {
		http.Error(w, "bad path or key", http.StatusUnauthorized)
		return
	}
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
		ResponseFormat map[string]any `json:"response_format"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "test-model" || len(req.Messages) != 2 || req.ResponseFormat["type"] != "json_schema" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	prompt := req.Messages[1].Content
	doc := prompt[strings.Index(prompt, "Document ("):]
	reasked := strings.Contains(prompt, "previous reply to this request was rejected")
	s.mu.Lock()
	s.prompts = append(s.prompts, prompt)
	s.seen[doc]++
	count := s.seen[doc]
	s.mu.Unlock()
	switch {
	case strings.Contains(doc, "DENY"):
		http.Error(w, "no", http.StatusUnauthorized)
		return
	case strings.Contains(doc, "FOREVER"):
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case strings.Contains(doc, "REFUSE"):
		http.Error(w, "context length exceeded", http.StatusBadRequest)
		return
	case strings.Contains(doc, "RATE") && count == 1:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case strings.Contains(doc, "ERR") && count <= 2:
		http.Error(w, "oops", http.StatusInternalServerError)
		return
	case strings.Contains(doc, "SLOW") && count == 1:
		time.Sleep(300 * time.Millisecond)
	}
	var content string
	fact := func(q string, distractors ...string) map[string]any {
		return map[string]any{"question": q + "?", "answer": "It is " + q + ".", "test_question": "Which " + q + "?", "correct": q,
			"distractors": distractors, "paraphrases": []map[string]string{{"question": "Say " + q + "?", "answer": q + "."}}}
	}
	switch {
	case strings.Contains(doc, "BAD"):
		content = "Sure! Here are your flashcards: ..."
	case strings.Contains(doc, "FLAKY") && !reasked:
		content = `{"facts":[{"question":"f1?","answer":"It is f1.","test_question":"Which f1?","correct":"f1","distr`
	case strings.Contains(doc, "TWODIST") && !reasked:
		b, _ := json.Marshal(map[string]any{"facts": []any{fact("a", "b", "c"), fact("ok1", "x", "y", "z"), fact("ok2", "x", "y", "z")}})
		content = string(b)
	case strings.Contains(doc, "CHOICES"):
		b, _ := json.Marshal(map[string]any{"facts": []any{fact("a", "b", "c"), fact("ok1", "x", "y", "z")}})
		content = string(b)
	case strings.Contains(doc, "DUP"):
		b, _ := json.Marshal(map[string]any{"facts": []any{fact("a", "A ", "c", "d"), fact("ok2", "x", "y", "z")}})
		content = "```json\n" + string(b) + "\n```"
	default:
		b, _ := json.Marshal(map[string]any{"facts": []any{fact("f1", "x", "y", "z"), fact("f2", "x", "y", "z"), fact("f3", "x", "y", "z")}})
		content = string(b)
	}
	json.NewEncoder(w).Encode(map[string]any{
		"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": content}}},
		"usage":   map[string]any{"prompt_tokens": 100, "completion_tokens": 50},
	})
}

func newTeacher(t *testing.T, url, cache string) *Teacher {
	tt, err := New(Config{BaseURL: url + "/v1/", Model: "test-model", APIKey: testKey, Concurrency: 3, MaxRetries: 3,
		Timeout: 100 * time.Millisecond, BackoffBase: time.Millisecond, CacheDir: cache, Flashcards: 3, Paraphrases: 1, Reasks: 2,
		PromptUSDPerMTok: 1, CompletionUSDPerMTok: 2, JSONSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func TestFactsWithFailuresCacheAndAccounting(t *testing.T) {
	srv := &fakeServer{seen: map[string]int{}, t: t}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	var chunks []curriculum.Chunk
	for i, kind := range []string{"plain", "RATE", "ERR", "SLOW", "BAD", "CHOICES", "DUP", "plain2", "plain3", "FOREVER"} {
		chunks = append(chunks, curriculum.Chunk{ID: fmt.Sprint("c", i), Title: "t", Text: "text " + kind})
	}
	cache := t.TempDir()
	teacher := newTeacher(t, ts.URL, cache)
	done := 0
	facts, err := teacher.Facts(context.Background(), chunks, func() { done++ })
	// The chunk whose replies are never JSON and the one whose server is down get no facts: the
	// error names both, and the other chunks' facts come with it.
	var partial *PartialError
	if !errors.As(err, &partial) || len(partial.Failed) != 2 || partial.Failed[0].ChunkID != "c4" || partial.Failed[1].ChunkID != "c9" ||
		!strings.Contains(partial.Failed[0].Reason, "not valid JSON") || !strings.Contains(partial.Failed[1].Reason, "503") {
		t.Fatalf("want a PartialError naming c4 (invalid JSON) and c9 (503), got %v", err)
	}
	if done != len(chunks) {
		t.Errorf("progress called %d times", done)
	}
	perChunk := map[string]int{}
	for _, f := range facts {
		perChunk[f.ChunkID]++
		if len(f.Distractors) != 3 || len(f.Paraphrases) != 1 || f.TestAnswer == "" {
			t.Fatalf("invalid fact written: %+v", f)
		}
	}
	want := map[string]int{"c0": 3, "c1": 3, "c2": 3, "c3": 3, "c4": 0, "c5": 1, "c6": 1, "c7": 3, "c8": 3, "c9": 0}
	for id, n := range want {
		if perChunk[id] != n {
			t.Errorf("chunk %s: %d facts, want %d", id, perChunk[id], n)
		}
	}
	u := teacher.Usage()
	// The three chunks whose replies stay invalid are asked 3 times each (2 re-asks).
	if u.Rejected["malformed_json"] != 3 || u.Rejected["wrong_number_of_choices"] != 3 ||
		u.Rejected["answer_among_distractors_or_duplicate"] != 3 || u.Rejected["request_failed"] != 1 || u.Reasks != 6 {
		t.Errorf("rejections %v, re-asks %d", u.Rejected, u.Reasks)
	}
	// 6 chunks answered once and 3 answered 3 times, each 100+50 tokens, at $1 and $2 per million.
	if u.PromptTokens != 1500 || u.CompletionTokens != 750 || u.CostUSD < 0.0029 || u.CostUSD > 0.0031 {
		t.Errorf("usage %+v", u)
	}
	if u.Retries < 1+2+1+3 {
		t.Errorf("retries %d", u.Retries)
	}
	if m := srv.maxFlight.Load(); m > 3 || m < 2 {
		t.Errorf("max in flight %d, want 2..3", m)
	}
	// Resume: a second run over the same cache pays for nothing it already has.
	before := srv.requests.Load()
	again := newTeacher(t, ts.URL, cache)
	facts2, err := again.Facts(context.Background(), chunks, nil)
	if !errors.As(err, &partial) || len(partial.Failed) != 2 {
		t.Fatalf("rerun: %v", err)
	}
	if len(facts2) != len(facts) {
		t.Errorf("resume gave %d facts, first run %d", len(facts2), len(facts))
	}
	u2 := again.Usage()
	// Only valid replies were cached: the chunk that never got an answer (4 attempts) and the
	// three whose replies were invalid (3 asks each) are asked again, the 6 others not.
	if got := srv.requests.Load() - before; got != 4+3*3 || u2.CacheHits != 6 || u2.PromptTokens != 900 {
		t.Errorf("resume: %d new requests, usage %+v", got, u2)
	}
	for _, e := range []string{fmt.Sprint(u), fmt.Sprint(u2)} {
		if strings.Contains(e, testKey) {
			t.Fatal("key leaked")
		}
	}
}

func TestAuthFailureStopsTheRun(t *testing.T) {
	srv := &fakeServer{seen: map[string]int{}, t: t}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	teacher := newTeacher(t, ts.URL, "")
	chunks := []curriculum.Chunk{{ID: "a", Text: "DENY"}, {ID: "b", Text: "plain"}}
	_, err := teacher.Facts(context.Background(), chunks, nil)
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), testKey) {
		t.Fatalf("want a 401 error without the key, got %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{Model: "m"}); err == nil || !strings.Contains(err.Error(), EnvBaseURL) {
		t.Errorf("missing URL: %v", err)
	}
	if _, err := New(Config{BaseURL: "http://x"}); err == nil || !strings.Contains(err.Error(), EnvModel) {
		t.Errorf("missing model: %v", err)
	}
	t.Setenv(EnvBaseURL, "")
	t.Setenv("OPENAI_BASE_URL", "http://fallback/v1")
	t.Setenv(EnvAPIKey, "")
	t.Setenv("OPENAI_API_KEY", "k")
	if c := ConfigFromEnv(); c.BaseURL != "http://fallback/v1" || c.APIKey != "k" {
		t.Errorf("env fallback %+v", c)
	}
}

func TestCancelledContext(t *testing.T) {
	srv := &fakeServer{seen: map[string]int{}, t: t}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	teacher := newTeacher(t, ts.URL, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := teacher.Facts(ctx, []curriculum.Chunk{{ID: "a", Text: "plain"}}, nil); err == nil {
		t.Fatal("cancelled run returned no error")
	}
}

// An invalid reply (truncated JSON, a flashcard with two distractors) is asked again with the
// reason in the prompt; only the valid reply is cached, so a rerun pays for nothing. A reply
// cached invalid (by an older version) is not trusted: the chunk is asked again.
func TestInvalidRepliesAreReasked(t *testing.T) {
	srv := &fakeServer{seen: map[string]int{}, t: t}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cache := t.TempDir()
	chunks := []curriculum.Chunk{{ID: "flaky", Title: "t", Text: "FLAKY"}, {ID: "two", Title: "t", Text: "TWODIST"}}
	teacher := newTeacher(t, ts.URL, cache)
	facts, err := teacher.Facts(context.Background(), chunks, nil)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, f := range facts {
		per[f.ChunkID]++
	}
	if per["flaky"] != 3 || per["two"] != 3 {
		t.Errorf("facts per chunk %v, want 3 each after the re-ask", per)
	}
	u := teacher.Usage()
	if u.Reasks != 2 || u.Rejected["malformed_json"] != 1 || u.Rejected["wrong_number_of_choices"] != 1 || srv.requests.Load() != 4 {
		t.Errorf("re-asks %d, rejections %v, %d requests", u.Reasks, u.Rejected, srv.requests.Load())
	}
	var reasons []string
	for _, p := range srv.prompts {
		if _, r, ok := strings.Cut(p, "previous reply to this request was rejected: "); ok {
			reasons = append(reasons, r[:strings.Index(r, "Document (")])
		}
	}
	if joined := strings.Join(reasons, "|"); len(reasons) != 2 || !strings.Contains(joined, "not valid JSON") || !strings.Contains(joined, "fact 1 has 2 distractors, not exactly 3") {
		t.Errorf("re-ask prompts give the reasons %q", reasons)
	}
	before := srv.requests.Load()
	if _, err := newTeacher(t, ts.URL, cache).Facts(context.Background(), chunks, nil); err != nil || srv.requests.Load() != before {
		t.Errorf("rerun: %v, %d new requests", err, srv.requests.Load()-before)
	}
	// Replace one cached reply by an invalid one, as the old teacher cached: it is asked again.
	tt := newTeacher(t, ts.URL, cache)
	key := tt.cacheKey(tt.userPrompt(chunks[1], ""))
	path := filepath.Join(cache, key[:2], key+".json")
	if err := writeAtomic(path, cached{Content: `{"facts":[{"question":"q"`}); err != nil {
		t.Fatal(err)
	}
	before = srv.requests.Load()
	facts, err = tt.Facts(context.Background(), chunks, nil)
	if err != nil || len(facts) != 6 || srv.requests.Load() != before+2 {
		t.Errorf("invalid cache entry: %v, %d facts, %d new requests", err, len(facts), srv.requests.Load()-before)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), `\"q\"`) {
		t.Error("the invalid cache entry was kept")
	}
}

// A 400 is not retried, and the chunk is reported failed rather than silently dropped.
func TestRefusedChunkIsReported(t *testing.T) {
	srv := &fakeServer{seen: map[string]int{}, t: t}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	facts, err := newTeacher(t, ts.URL, "").Facts(context.Background(), []curriculum.Chunk{{ID: "ok", Text: "plain"}, {ID: "big", Text: "REFUSE"}}, nil)
	var partial *PartialError
	if !errors.As(err, &partial) || len(partial.Failed) != 1 || partial.Failed[0].ChunkID != "big" || !strings.Contains(err.Error(), "400") || len(facts) != 3 {
		t.Fatalf("want a PartialError naming chunk big (400) and the other chunk's 3 facts, got %v, %d facts", err, len(facts))
	}
	if srv.requests.Load() != 2 {
		t.Errorf("%d requests: a 400 must not be retried", srv.requests.Load())
	}
}
