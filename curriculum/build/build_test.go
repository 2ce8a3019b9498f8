package build

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perpetual-ml/perpetual/internal/testenv"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/leakage"
	"github.com/perpetual-ml/perpetual/curriculum/teacher/llm"
)

func readBack(t *testing.T, dir string) *curriculum.Curriculum {
	t.Helper()
	c, err := curriculum.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSyntheticAndPerpetual(t *testing.T) {
	out := filepath.Join(t.TempDir(), "syn")
	if _, err := Build(context.Background(), Options{Source: "synthetic", Task: "code", Out: out, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	c := readBack(t, out)
	if c.Manifest.Source != "synthetic" || c.Manifest.Counts.TestSeen == 0 || c.Manifest.Seed != 9 {
		t.Fatalf("manifest %+v", c.Manifest)
	}
	dir := "../../../shared/datasets/perpetual/research"
	testenv.File(t, "the Perpetual reference data", dir)
	out = filepath.Join(t.TempDir(), "research")
	if _, err := Build(context.Background(), Options{Source: "perpetual", Inputs: []string{dir}, Out: out}); err != nil {
		t.Fatal(err)
	}
	c = readBack(t, out)
	if r := leakage.Analyze(c, 0); r.All.Verbatim < 1700 {
		t.Fatalf("leakage lost in the round trip: %+v", r.All)
	}
}

func TestOfflineSources(t *testing.T) {
	tmp := t.TempDir()
	var b strings.Builder
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, `{"title": "Gadget %d", "brand": "Brand%d", "price": "$%d.99", "description": "A gadget <b>number</b> %d."}`+"\n", i, i%5, 10+i, i)
	}
	os.WriteFile(filepath.Join(tmp, "p.jsonl"), []byte(b.String()), 0o644)
	for _, tc := range []struct {
		source  string
		inputs  []string
		teacher string
	}{
		{"code", []string{testenv.ModuleDir(t, "github.com/spf13/cobra")}, "offline:declarations"},
		{"papers", []string{"../sources/papers/testdata/paper.pdf", "../sources/papers/testdata/broken.pdf"}, "offline:cloze"},
		{"products", []string{filepath.Join(tmp, "p.jsonl")}, "offline:fields"},
	} {
		out := filepath.Join(tmp, tc.source)
		stages := 0
		_, err := Build(context.Background(), Options{Source: tc.source, Inputs: tc.inputs, Teacher: "offline", Out: out, Seed: 1,
			ClozePerChunk: 10, Assemble: curriculum.AssembleOptions{ValidationFraction: -1},
			Progress: func(string, int) func() { stages++; return func() {} }})
		if err != nil {
			t.Fatalf("%s: %v", tc.source, err)
		}
		c := readBack(t, out)
		if c.Manifest.Teacher != tc.teacher || len(c.Test) == 0 || stages == 0 {
			t.Errorf("%s: teacher %q, %d questions, %d stages", tc.source, c.Manifest.Teacher, len(c.Test), stages)
		}
		if tc.source == "papers" {
			reasons := fmt.Sprint(c.Manifest.Skipped)
			if !strings.Contains(reasons, "broken.pdf") || !strings.Contains(reasons, "pages without text: [2]") {
				t.Errorf("papers skipped %v", c.Manifest.Skipped)
			}
		}
	}
}

// The paper's product documents (real WDC offers: title + description, no structured fields)
// give cloze questions.
func TestProductsFromRealWDC(t *testing.T) {
	data, err := os.ReadFile(testenv.File(t, "the Perpetual reference data", "../../../shared/datasets/perpetual/products/train.json"))
	if err != nil {
		t.Fatal(err)
	}
	var items []struct {
		Type     string          `json:"type"`
		Document json.RawMessage `json:"document"`
	}
	json.Unmarshal(data, &items)
	var docs []json.RawMessage
	for _, it := range items {
		if it.Type == "doc" && len(docs) < 120 {
			docs = append(docs, it.Document)
		}
	}
	b, _ := json.Marshal(docs)
	in := filepath.Join(t.TempDir(), "wdc.json")
	os.WriteFile(in, b, 0o644)
	c, err := Build(context.Background(), Options{Source: "products", Inputs: []string{in}, Teacher: "offline", Out: filepath.Join(t.TempDir(), "out"), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Manifest.Teacher != "offline:fields+cloze" || len(c.Test) < 100 || c.Manifest.Counts.TestDocumentOnly == 0 {
		t.Fatalf("teacher %s, counts %+v", c.Manifest.Teacher, c.Manifest.Counts)
	}
}

func TestBadOptions(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x")
	for _, o := range []Options{
		{Source: "poems", Out: out},
		{Source: "code", Inputs: []string{"."}, Teacher: "oracle", Out: out},
		{Source: "papers", Teacher: "offline", Out: out},
		{Source: "papers", Inputs: []string{"/nonexistent/file.pdf"}, Teacher: "offline", Out: out},
		{Source: "perpetual", Out: out},
		{Source: "papers", Inputs: []string{"../sources/papers/testdata/broken.pdf"}, Teacher: "offline", Out: out},
	} {
		if _, err := Build(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// An interrupted LLM run resumes: chunks answered before the interruption are not asked again.
func TestLLMRunResumes(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		time.Sleep(20 * time.Millisecond)
		facts := []map[string]any{}
		for i := 0; i < 3; i++ {
			facts = append(facts, map[string]any{"question": fmt.Sprintf("Q%d of %d?", i, requests.Load()), "answer": "A.", "test_question": fmt.Sprintf("T%d %d?", i, requests.Load()),
				"correct": "right", "distractors": []string{"w1", "w2", "w3"}, "paraphrases": []any{}})
		}
		content, _ := json.Marshal(map[string]any{"facts": facts})
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": string(content)}}},
			"usage": map[string]int{"prompt_tokens": 10, "completion_tokens": 5}})
	}))
	defer srv.Close()
	tmp := t.TempDir()
	var paths []string
	for i := 0; i < 8; i++ {
		p := filepath.Join(tmp, fmt.Sprintf("doc%d.txt", i))
		os.WriteFile(p, []byte(fmt.Sprintf("Document %d says the tide rose %d centimetres.", i, 10+i)), 0o644)
		paths = append(paths, p)
	}
	out := filepath.Join(tmp, "cur")
	opt := Options{Source: "papers", Inputs: paths, Teacher: "llm", Out: out, Seed: 1,
		LLM: llm.Config{BaseURL: srv.URL, Model: "m", Concurrency: 1, BackoffBase: time.Millisecond}}
	ctx, cancel := context.WithCancel(context.Background())
	done := 0
	opt.Progress = func(stage string, total int) func() {
		return func() {
			if strings.HasPrefix(stage, "asking") {
				if done++; done == 3 {
					cancel() // Ctrl-C after three chunks
				}
			}
		}
	}
	if _, err := Build(ctx, opt); err == nil || !strings.Contains(err.Error(), "run again to resume") {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("an interrupted run wrote a curriculum")
	}
	first := requests.Load()
	opt.Progress = nil
	c, err := Build(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	// Three chunks were answered before the interruption; at most the five others are asked again.
	if again := requests.Load() - first; again > 5 || again < 1 {
		t.Errorf("resume asked %d chunks again after %d", again, first)
	}
	if c.Manifest.Usage == nil || c.Manifest.Usage.CacheHits < 3 || c.Manifest.Teacher != "llm:m" {
		t.Errorf("manifest %+v usage %+v", c.Manifest, c.Manifest.Usage)
	}
}

// A chunk the LLM teacher cannot answer (HTTP 500 on every attempt, a 400) fails the build,
// naming it, and nothing is written; --allow-partial writes the curriculum and lists the missing
// chunks in the manifest.
func TestLLMBuildFailsOnMissingChunks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		prompt := req.Messages[len(req.Messages)-1].Content
		switch {
		case strings.Contains(prompt, "crashes the server"):
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		case strings.Contains(prompt, "is too long"):
			http.Error(w, "context length exceeded", http.StatusBadRequest)
			return
		}
		facts := []map[string]any{}
		for i := 0; i < 3; i++ {
			facts = append(facts, map[string]any{"question": fmt.Sprintf("Q%d?", i), "answer": "A.", "test_question": fmt.Sprintf("T%d?", i),
				"correct": "right", "distractors": []string{"w1", "w2", "w3"}, "paraphrases": []any{}})
		}
		content, _ := json.Marshal(map[string]any{"facts": facts})
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": string(content)}}}})
	}))
	defer srv.Close()
	tmp := t.TempDir()
	var paths []string
	for i, text := range []string{"The tide rose 10 cm.", "This document crashes the server.", "The moon is far.", "This document is too long.", "The sea is salty."} {
		p := filepath.Join(tmp, fmt.Sprintf("doc%d.txt", i))
		os.WriteFile(p, []byte(text), 0o644)
		paths = append(paths, p)
	}
	out := filepath.Join(tmp, "cur")
	opt := Options{Source: "papers", Inputs: paths, Teacher: "llm", Out: out, Seed: 1,
		LLM: llm.Config{BaseURL: srv.URL, Model: "m", Concurrency: 2, MaxRetries: 2, BackoffBase: time.Millisecond}}
	_, err := Build(context.Background(), opt)
	if err == nil || !strings.Contains(err.Error(), "no facts for 2 of 5 chunks") || !strings.Contains(err.Error(), "doc1") ||
		!strings.Contains(err.Error(), "doc3") || !strings.Contains(err.Error(), "--allow-partial") {
		t.Fatalf("want an error naming doc1 and doc3, got %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a failed build wrote a curriculum")
	}
	opt.AllowPartial = true
	c, err := Build(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	c = readBack(t, out)
	var ids []string
	for _, m := range c.Manifest.MissingFacts {
		ids = append(ids, m.ChunkID)
		if m.Reason == "" {
			t.Errorf("chunk %s: no reason", m.ChunkID)
		}
	}
	if len(ids) != 2 || !strings.HasPrefix(ids[0], "doc1") || !strings.HasPrefix(ids[1], "doc3") || len(c.Manifest.Notes) == 0 {
		t.Errorf("manifest missing_facts %v, notes %v", c.Manifest.MissingFacts, c.Manifest.Notes)
	}
}
