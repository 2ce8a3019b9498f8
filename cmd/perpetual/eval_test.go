package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/rag"
)

// tinyModelDir makes a model folder from the tiny Gemma checkpoint of models/gemma/testdata plus a
// character-level BPE tokenizer.json whose ids fit the model's 67-token vocabulary.
func tinyModelDir(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "models", "gemma", "testdata", "mha")
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), data, 0o644)
	}
	vocab := map[string]int{"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
	chars := " \n.:?ABCD" + "abcdefghijklmnopqrstuvwxyz" + "0123456789"
	for _, c := range chars {
		vocab[string(c)] = len(vocab)
	}
	var added []map[string]any
	for _, s := range []string{"<pad>", "<eos>", "<bos>", "<unk>"} {
		added = append(added, map[string]any{"id": vocab[s], "content": s, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true})
	}
	tok := map[string]any{"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer": nil, "pre_tokenizer": nil, "post_processor": nil, "decoder": nil,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": "<unk>", "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []string{}}}
	data, _ := json.Marshal(tok)
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"bos_token": "<bos>", "eos_token": "<eos>", "add_bos_token": true}`), 0o644)
	return dir
}

func TestEvalCommandEndToEnd(t *testing.T) {
	model := tinyModelDir(t)
	dir := t.TempDir()
	var qs []curriculum.Question
	var chunks []curriculum.Chunk
	// Short texts: the tiny model's window is 64 tokens of one character each, room for the
	// prompt and one passage.
	colours := []string{"red", "tan", "blue", "gold", "teal", "pink"}
	names := []string{"ox", "cat", "dog", "owl", "bee", "ant", "elk", "emu", "yak", "gnu", "cod", "eel"}
	for i, name := range names {
		c := curriculum.Chunk{ID: fmt.Sprintf("doc%02d", i), Source: "test", Text: fmt.Sprintf("%s %s.", name, colours[i%6])}
		chunks = append(chunks, c)
		q := curriculum.Question{ID: fmt.Sprintf("q%02d", i), Question: name + "?",
			Answer: i % 4, Kind: []string{curriculum.KindSeen, curriculum.KindDocumentOnly}[i%2], ChunkID: c.ID}
		for j := range 4 {
			q.Choices = append(q.Choices, colours[(i+j)%6])
		}
		qs = append(qs, q)
	}
	cur := filepath.Join(dir, "cur")
	if err := curriculum.Write(cur, &curriculum.Curriculum{Chunks: chunks, Test: qs}); err != nil {
		t.Fatal(err)
	}
	idx, err := rag.Build(chunks, rag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "index")
	if err := idx.Save(index); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base")
	out, err := runCLI(t, "eval", "--model", model, "--test", cur, "--out", base, "--quiet", "--batch-size", "7")
	if err != nil || !strings.Contains(out, "perpetual_letters") || !strings.Contains(out, "perpetual_cloze") {
		t.Fatalf("eval: %v\n%s", err, out)
	}
	withRAG := filepath.Join(dir, "rag")
	out, err = runCLI(t, "eval", "--model", model, "--test", cur, "--out", withRAG, "--rag", index, "--base", base,
		"--formulation", "letters", "--limit", "10", "--quiet")
	if err != nil || !strings.Contains(out, "vs base") || !strings.Contains(out, "recall@k") {
		t.Fatalf("eval --rag: %v\n%s", err, out)
	}
	samples, err := evaluation.ReadSamples(filepath.Join(withRAG, evaluation.SamplesFile("perpetual_letters")))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 10 || len(samples[0].Retrieved) != 1 || samples[0].Retrieved[0] != "doc00" || !strings.HasPrefix(samples[0].Prompt, "ox red.\n\nox?") {
		t.Errorf("rag samples: %d, first %+v", len(samples), samples[0])
	}
	// Re-running reads every request from the cache and gives the same results file.
	first, _ := os.ReadFile(filepath.Join(base, "results.json"))
	if _, err := runCLI(t, "eval", "--model", model, "--test", cur, "--out", base, "--quiet", "--batch-size", "32"); err != nil {
		t.Fatal(err)
	}
	var r1, r2 evaluation.Results
	second, _ := os.ReadFile(filepath.Join(base, "results.json"))
	json.Unmarshal(first, &r1)
	json.Unmarshal(second, &r2)
	if r2.Perpetual["perpetual_letters"].CachedRequests != r2.Perpetual["perpetual_letters"].Requests ||
		r1.Results["perpetual_letters"]["acc,none"] != r2.Results["perpetual_letters"]["acc,none"] {
		t.Errorf("re-run: %+v vs %+v", r2.Perpetual["perpetual_letters"], r1.Perpetual["perpetual_letters"])
	}
	for _, bad := range [][]string{
		{"eval", "--model", model, "--test", cur},
		{"eval", "--model", filepath.Join(dir, "none"), "--test", cur, "--out", dir},
		{"eval", "--model", model, "--test", cur, "--out", dir, "--formulation", "essay"},
	} {
		if _, err := runCLI(t, bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// Numeric flags out of range are refused before anything is loaded or written.
func TestEvalRefusesBadNumbers(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct{ flag, value string }{{"--k", "-1"}, {"--k", "0"}, {"--limit", "-2"}, {"--batch-size", "0"}} {
		_, err := runCLI(t, "eval", "--model", filepath.Join(dir, "model"), "--test", filepath.Join(dir, "test.jsonl"), "--out", out, tc.flag, tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.flag+" "+tc.value) {
			t.Errorf("%s %s: error %v, want one naming the flag", tc.flag, tc.value, err)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s %s: the output folder was created", tc.flag, tc.value)
		}
	}
}
