package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
	"github.com/perpetual-ml/perpetual/curriculum/teacher/llm"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestCurriculumCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cur")
	out, err := runCLI(t, "curriculum", "build", "--source", "synthetic", "--task", "products", "--chunks", "12", "--doc-variants", "1", "--quiet", "--out", dir)
	if err != nil || !strings.Contains(out, "chunks 12; train 24 docs") {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err = runCLI(t, "curriculum", "stats", dir)
	if err != nil || !strings.Contains(out, "always-the-same-letter accuracy") || !strings.Contains(out, "document_only") {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	exp := filepath.Join(t.TempDir(), "exp")
	if out, err = runCLI(t, "curriculum", "export-perpetual", dir, exp); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	test, err := perpetualfmt.ReadTest(filepath.Join(exp, "test.json"))
	if err != nil || len(test) == 0 || !strings.HasPrefix(test[0].Choices[1], "B) ") {
		t.Fatalf("exported test: %v %+v", err, test)
	}
	if out, err := runCLI(t, "curriculum", "world", filepath.Join(t.TempDir(), "world"), "--towns", "10", "--reading", "5"); err != nil || !strings.Contains(out, "instruction pairs, ") {
		t.Fatalf("world: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "curriculum", "build", "--source", "nope", "--quiet", "--out", dir); err == nil {
		t.Fatal("bad source accepted")
	}
	if _, err := runCLI(t, "curriculum", "stats", t.TempDir()); err == nil || !strings.Contains(err.Error(), "neither a curriculum") {
		t.Fatalf("stats on an empty folder: %v", err)
	}
}

// The LLM flags are checked before any work, and a chunk the LLM refuses (HTTP 400) fails the
// build unless --allow-partial, which lists it.
func TestCurriculumBuildLLMFlags(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "refused") {
			http.Error(w, "context length exceeded", http.StatusBadRequest)
			return
		}
		var facts []map[string]any
		for i := range 3 {
			facts = append(facts, map[string]any{"question": fmt.Sprintf("Q%d?", i), "answer": "A.", "test_question": fmt.Sprintf("T%d?", i),
				"correct": "right", "distractors": []string{"w1", "w2", "w3"}, "paraphrases": []any{}})
		}
		content, _ := json.Marshal(map[string]any{"facts": facts})
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": string(content)}}}})
	}))
	defer srv.Close()
	t.Setenv(llm.EnvBaseURL, srv.URL)
	t.Setenv(llm.EnvModel, "m")
	tmp := t.TempDir()
	var docs []string
	for i, text := range []string{"The tide rose 10 cm.", "This chunk is refused.", "The sea is salty."} {
		p := filepath.Join(tmp, fmt.Sprintf("doc%d.txt", i))
		os.WriteFile(p, []byte(text), 0o644)
		docs = append(docs, p)
	}
	out := filepath.Join(tmp, "cur")
	build := append([]string{"curriculum", "build", "--source", "papers", "--teacher", "llm", "--quiet", "--out", out}, docs...)
	for _, bad := range [][]string{{"--llm-timeout", "0s"}, {"--llm-reasks", "-1"}, {"--llm-concurrency", "0"}} {
		if _, err := runCLI(t, append(build, bad...)...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: error %v, want one naming the flag", bad, err)
		}
	}
	if _, err := runCLI(t, append(build, "--llm-timeout", "5s")...); err == nil || !strings.Contains(err.Error(), "doc1") || !strings.Contains(err.Error(), "--allow-partial") {
		t.Fatalf("refused chunk: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a failed build wrote a curriculum")
	}
	got, err := runCLI(t, append(build, "--allow-partial")...)
	if err != nil || !strings.Contains(got, "no facts for chunk doc1") {
		t.Fatalf("--allow-partial: %v\n%s", err, got)
	}
}
