package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tiny Gemma fixture of models/gemma (weights + logits from a plain-torch reference).
var tinyGemma = filepath.Join("..", "..", "models", "gemma", "testdata", "mha")

func TestLogitsCommandMatchesReference(t *testing.T) {
	var golden struct {
		Sequences [][]int32   `json:"sequences"`
		Logits    [][]float64 `json:"logits"` // per sequence, T*V flattened
	}
	raw, err := os.ReadFile(filepath.Join(tinyGemma, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ids := filepath.Join(dir, "ids.json")
	seqs, _ := json.Marshal(golden.Sequences)
	os.WriteFile(ids, seqs, 0o644)
	outPath := filepath.Join(dir, "out.json")
	if out, err := runCLI(t, "logits", "--model", tinyGemma, "--tokens", ids, "--out", outPath, "--dtype", "float32"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	raw, err = os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Logits [][]float64 `json:"logits"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(golden.Sequences) {
		t.Fatalf("%d results for %d sequences", len(got), len(golden.Sequences))
	}
	for s, seq := range golden.Sequences {
		if len(got[s].Logits) != len(seq) {
			t.Fatalf("sequence %d: %d rows, want %d", s, len(got[s].Logits), len(seq))
		}
		V := len(golden.Logits[s]) / len(seq)
		for tt, row := range got[s].Logits {
			if len(row) != V {
				t.Fatalf("sequence %d position %d: %d logits, want %d", s, tt, len(row), V)
			}
			for v, x := range row {
				if d := math.Abs(x - golden.Logits[s][tt*V+v]); d > 1e-3 {
					t.Fatalf("sequence %d position %d token %d: %v, reference %v", s, tt, v, x, golden.Logits[s][tt*V+v])
				}
			}
		}
	}

	// Bad inputs give errors naming the file.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"not":"an array"}`), 0o644)
	if _, err := runCLI(t, "logits", "--model", tinyGemma, "--tokens", bad, "--out", outPath, "--dtype", "float32"); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad token file: %v", err)
	}
	os.WriteFile(bad, []byte(`[[1, 100000]]`), 0o644)
	if _, err := runCLI(t, "logits", "--model", tinyGemma, "--tokens", bad, "--out", outPath, "--dtype", "float32"); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Fatalf("out-of-vocabulary token: %v", err)
	}
}

// No sequences, or an empty one, is an error naming the file; nothing is written.
func TestLogitsRefusesEmptyInput(t *testing.T) {
	dir := t.TempDir()
	outPath := filepath.Join(dir, "out.json")
	for _, in := range []string{`[]`, `[[]]`, `[[2, 5], []]`} {
		ids := filepath.Join(dir, "ids.json")
		os.WriteFile(ids, []byte(in), 0o644)
		_, err := runCLI(t, "logits", "--model", tinyGemma, "--tokens", ids, "--out", outPath, "--dtype", "float32")
		if err == nil || !strings.Contains(err.Error(), ids) {
			t.Errorf("%s: error %v, want one naming %s", in, err, ids)
		}
		if _, err := os.Stat(outPath); err == nil {
			t.Fatalf("%s: a result was written", in)
		}
	}
}

func TestDoctorModel(t *testing.T) {
	out, err := runCLI(t, "doctor", "--model", tinyGemma)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"family:   gemma", "params:", "F32", "model ok"} {
		if !strings.Contains(out, want) {
			t.Fatalf("doctor output lacks %q:\n%s", want, out)
		}
	}
	// A config that disagrees with the weights is reported as a problem.
	dir := t.TempDir()
	cfg, _ := os.ReadFile(filepath.Join(tinyGemma, "config.json"))
	var c map[string]any
	json.Unmarshal(cfg, &c)
	c["vocab_size"] = c["vocab_size"].(float64) + 1
	cfg, _ = json.Marshal(c)
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	st, _ := os.ReadFile(filepath.Join(tinyGemma, "model.safetensors"))
	os.WriteFile(filepath.Join(dir, "model.safetensors"), st, 0o644)
	out, err = runCLI(t, "doctor", "--model", dir)
	if err == nil || !strings.Contains(out, "problem:") || !strings.Contains(out, "embed_tokens") {
		t.Fatalf("mismatched config: %v\n%s", err, out)
	}
}

// doctor --model prints the memory estimate of scoring and training for every family, each
// from the family's own memory model, at --batch, --length (capped by the window) and --dtype.
func TestDoctorModelMemoryEveryFamily(t *testing.T) {
	for _, dir := range []string{
		filepath.Join("..", "..", "models", "gemma", "testdata", "mha"),
		filepath.Join("..", "..", "models", "gemma", "testdata", "gemma2_sharded"),
		filepath.Join("..", "..", "models", "gemma", "testdata", "gemma3_pattern"),
		filepath.Join("..", "..", "models", "llama", "testdata", "llama3_gqa"),
		filepath.Join("..", "..", "models", "llama", "testdata", "qwen2_bias"),
		filepath.Join("..", "..", "models", "llama", "testdata", "qwen3_qknorm"),
		filepath.Join("..", "..", "models", "mamba", "testdata", "k4_bias_s16"),
	} {
		out, err := runCLI(t, "doctor", "--model", dir, "--batch", "4", "--length", "32", "--dtype", "bfloat16")
		if err != nil {
			t.Fatalf("%s: %v\n%s", dir, err, out)
		}
		for _, want := range []string{"memory:   BFloat16, 4 x ", "  scoring:  weights ", "  training: weights ", "trained copies, gradients and moments",
			"activations ", "  decoding: cache of "} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: doctor output lacks %q:\n%s", dir, want, out)
			}
		}
		if strings.Contains(out, "no memory model") {
			t.Errorf("%s: the family has no memory model:\n%s", dir, out)
		}
	}
	if out, err := runCLI(t, "doctor", "--model", tinyGemma, "--batch", "0"); err == nil {
		t.Errorf("--batch 0 accepted:\n%s", out)
	}
}

// The llama package's families are wired in: doctor recognises Llama, Qwen2 and Qwen3 folders
// (the golden fixtures of models/llama) and lists them as registered.
func TestDoctorModelLlamaFamilies(t *testing.T) {
	for fixture, family := range map[string]string{"llama3_gqa": "llama", "qwen2_bias": "qwen2", "qwen3_qknorm": "qwen3"} {
		out, err := runCLI(t, "doctor", "--model", filepath.Join("..", "..", "models", "llama", "testdata", fixture))
		if err != nil {
			t.Fatalf("%s: %v\n%s", fixture, err, out)
		}
		for _, want := range []string{"family:   " + family, "llama, mamba, qwen2, qwen3", "model ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: doctor output lacks %q:\n%s", fixture, want, out)
			}
		}
	}
}

// Gemma 2 and Gemma 3 text are wired in through models/gemma: doctor recognises their folders
// (the golden fixtures of models/gemma) and lists them as registered.
func TestDoctorModelGemma23Families(t *testing.T) {
	for fixture, family := range map[string]string{"gemma2_sharded": "gemma2", "gemma3_pattern": "gemma3_text"} {
		out, err := runCLI(t, "doctor", "--model", filepath.Join("..", "..", "models", "gemma", "testdata", fixture))
		if err != nil {
			t.Fatalf("%s: %v\n%s", fixture, err, out)
		}
		for _, want := range []string{"family:   " + family, "gemma, gemma2, gemma3_text, llama", "model ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: doctor output lacks %q:\n%s", fixture, want, out)
			}
		}
	}
}
