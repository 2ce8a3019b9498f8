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
	return tinyModelFrom(t, filepath.Join("..", "..", "models", "gemma", "testdata", "mha"), `"add_bos_token": true`)
}

// tinyModelFrom copies a tiny checkpoint's config and weights and adds the character-level
// tokenizer (49 ids), its tokenizer_config.json holding tokenizerConfig's fields besides the specials.
func tinyModelFrom(t *testing.T, src, tokenizerConfig string) string {
	t.Helper()
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
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"bos_token": "<bos>", "eos_token": "<eos>", `+tokenizerConfig+`}`), 0o644)
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
	// Recall: every formulation in one run, then recall alone with RAG compared with it (both
	// scores), its answers generated once and read back from the cache on a rerun.
	all := filepath.Join(dir, "all")
	out, err = runCLI(t, "eval", "--model", model, "--test", cur, "--out", all, "--formulation", "all", "--quiet")
	if err != nil || !strings.Contains(out, "perpetual_letters") || !strings.Contains(out, "perpetual_recall") || !strings.Contains(out, "exact_match") {
		t.Fatalf("eval --formulation all: %v\n%s", err, out)
	}
	recalled, err := evaluation.ReadSamples(filepath.Join(all, evaluation.SamplesFile("perpetual_recall")))
	if err != nil || len(recalled) != len(qs) || recalled[0].Recall == nil || len(recalled[0].Recall.TokenIDs) == 0 ||
		recalled[0].Prompt != "Question: ox?\nAnswer:" || recalled[0].Recall.Gold != qs[0].Choices[qs[0].Answer] {
		t.Fatalf("recall samples: %v %+v", err, recalled)
	}
	recallRAG := filepath.Join(dir, "recall-rag")
	for range 2 {
		out, err = runCLI(t, "eval", "--model", model, "--test", cur, "--out", recallRAG, "--rag", index, "--base", all,
			"--formulation", "recall", "--quiet")
		if err != nil || !strings.Contains(out, "contains vs base") || !strings.Contains(out, "recall@k") {
			t.Fatalf("eval --formulation recall --rag: %v\n%s", err, out)
		}
	}
	var rr evaluation.Results
	raw, _ := os.ReadFile(filepath.Join(recallRAG, "results.json"))
	json.Unmarshal(raw, &rr)
	if ex := rr.Perpetual["perpetual_recall"]; ex.CachedRequests != ex.Requests || ex.Requests == 0 || rr.Results["perpetual_recall"]["contains,none"] == nil {
		t.Errorf("recall rerun: %+v %v", ex, rr.Results["perpetual_recall"])
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

// lm-eval's max_length rule and the --max-length / --add-bos-token flags, end to end: a Mamba
// (no window of its own) is truncated at 2048 tokens as lm-eval's HFLM does, the flags replace the
// model's settings, and the per-sample log records the token ids.
func TestEvalEncodingFlags(t *testing.T) {
	mamba := tinyModelFrom(t, filepath.Join("..", "..", "models", "mamba", "testdata", "k4_bias_s16"), `"add_bos_token": false`)
	dir := t.TempDir()
	test := filepath.Join(dir, "long.jsonl")
	long := strings.Repeat("abc ", 530) + "which?" // 2,126 characters, one token each
	os.WriteFile(test, []byte(`{"id":"l","question":"`+long+`","choices":["red","tan","blue","gold"],"answer":1,"kind":"seen"}`+"\n"+
		`{"id":"s","question":"ox?","choices":["red","tan","blue","gold"],"answer":0,"kind":"seen"}`+"\n"), 0o644)
	type results struct { // results.json's fields read here (configs do not read back into a Task)
		Config    map[string]any               `json:"config"`
		Perpetual map[string]evaluation.Extras `json:"perpetual"`
	}
	eval := func(out string, flags ...string) (results, []evaluation.Sample) {
		t.Helper()
		args := append([]string{"eval", "--model", mamba, "--test", test, "--out", out, "--formulation", "letters", "--quiet", "--no-cache"}, flags...)
		if msg, err := runCLI(t, args...); err != nil {
			t.Fatalf("%v: %v\n%s", flags, err, msg)
		}
		var res results
		raw, _ := os.ReadFile(filepath.Join(out, "results.json"))
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatal(err)
		}
		samples, err := evaluation.ReadSamples(filepath.Join(out, evaluation.SamplesFile("perpetual_letters")))
		if err != nil {
			t.Fatal(err)
		}
		return res, samples
	}
	res, samples := eval(filepath.Join(dir, "default"))
	prompt := len(samples[0].Prompt) // characters = tokens, no BOS
	if res.Config["max_length"] != float64(2048) || !strings.Contains(res.Config["max_length_source"].(string), "default") ||
		samples[0].TruncatedTokens != prompt+2-2049 || samples[1].TruncatedTokens != 0 || res.Perpetual["perpetual_letters"].QuestionsTruncated != 1 {
		t.Errorf("mamba default: config %v, truncated %d (prompt %d tokens) and %d", res.Config, samples[0].TruncatedTokens, prompt, samples[1].TruncatedTokens)
	}
	if len(samples[0].ContextTokenIDs) != prompt || len(samples[0].ContinuationTokenIDs) != 4 || len(samples[0].ContinuationTokenIDs[1]) != 2 {
		t.Errorf("token ids: context %d ids, continuations %v", len(samples[0].ContextTokenIDs), samples[0].ContinuationTokenIDs)
	}
	// A real model_max_length in tokenizer_config.json is honoured, as lm-eval does.
	os.WriteFile(filepath.Join(mamba, "tokenizer_config.json"), []byte(`{"bos_token": "<bos>", "eos_token": "<eos>", "model_max_length": 512}`), 0o644)
	res, samples = eval(filepath.Join(dir, "tokenizer"))
	if res.Config["max_length"] != float64(512) || samples[0].TruncatedTokens != prompt+2-513 {
		t.Errorf("model_max_length 512: config %v, truncated %d", res.Config, samples[0].TruncatedTokens)
	}
	res, samples = eval(filepath.Join(dir, "flags"), "--max-length", "30", "--add-bos-token", "true")
	if res.Config["max_length"] != float64(30) || res.Config["add_bos_token"] != true || samples[1].ContextTokenIDs[0] != 2 ||
		samples[1].TruncatedTokens != 1+len(samples[1].Prompt)+2-31 {
		t.Errorf("--max-length 30 --add-bos-token true: config %v, short question truncated %d, context %v", res.Config, samples[1].TruncatedTokens, samples[1].ContextTokenIDs)
	}
	gemma := tinyModelDir(t)
	res, samples = eval(filepath.Join(dir, "gemma"), "--model", gemma, "--add-bos-token", "false", "--max-length", "64")
	if res.Config["add_bos_token"] != false || samples[1].ContextTokenIDs[0] == 2 {
		t.Errorf("gemma --add-bos-token false: config %v, context %v", res.Config, samples[1].ContextTokenIDs)
	}
	for _, bad := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--max-length", "-1"}, "--max-length -1 is negative"},
		{[]string{"--add-bos-token", "maybe"}, `--add-bos-token: add_bos_token "maybe"`},
		{[]string{"--model", gemma, "--max-length", "100"}, "at most 64"},
	} {
		args := append([]string{"eval", "--model", mamba, "--test", test, "--out", filepath.Join(dir, "bad"), "--quiet"}, bad.flags...)
		if _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want %q", bad.flags, err, bad.want)
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
