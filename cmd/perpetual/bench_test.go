package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyBenchConfig is a ~0.1M-parameter Gemma with a 64-token window.
const tinyBenchConfig = `{"model_type":"gemma","vocab_size":512,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
"num_attention_heads":4,"num_key_value_heads":1,"head_dim":16,"max_position_embeddings":64,"hidden_act":"gelu"}`

// tinyBenchMamba is a 2-layer Mamba of hidden 32 (no window: a recurrent state).
const tinyBenchMamba = `{"model_type":"mamba","vocab_size":512,"hidden_size":32,"num_hidden_layers":2,"state_size":8,
"expand":2,"conv_kernel":4,"time_step_rank":"auto"}`

// writeConfig writes a config.json for --config in a fresh folder.
func writeConfig(t *testing.T, config string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Bad flags are refused with an error naming the flag, before any model is built or loaded
// (a missing model folder is never reached).
func TestBenchRefusesBadFlags(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(tinyBenchConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-model")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "exactly one of --model"},
		{[]string{"--model", missing, "--config", cfg}, "exactly one of --model"},
		{[]string{"--model", missing, "--batch", "0"}, "--batch 0"},
		{[]string{"--model", missing, "--length", "1"}, "--length 1"},
		{[]string{"--model", missing, "--warmup", "0"}, "--warmup 0"},
		{[]string{"--model", missing, "--repeats", "0"}, "--repeats 0"},
		{[]string{"--model", missing, "--matmul", "-5"}, "--matmul -5"},
		{[]string{"--model", missing, "--phases", "scoring,decode"}, `unknown phase "decode"`},
		{[]string{"--model", missing, "--dtype", "int8"}, "--dtype"},
		{[]string{"--model", missing, "--memory-limit", "-1"}, "--memory-limit"},
		{[]string{"--config", cfg, "--length", "65"}, "maximum length 64"},
		{[]string{"--model", missing, "--phases", "generation", "--gen-tokens", "0"}, "--gen-tokens 0"},
		{[]string{"--model", missing, "--phases", "generation", "--gen-tokens", "1"}, "--gen-tokens 1"},
		{[]string{"--model", missing, "--phases", "generation", "--gen-tokens", "-3"}, "--gen-tokens -3"},
		{[]string{"--model", missing, "--gen-prompts", "0"}, "--gen-prompts"},
		{[]string{"--model", missing, "--gen-prompts", "16,-4"}, "--gen-prompts"},
		{[]string{"--model", missing, "--gen-prompts", "16,x"}, "--gen-prompts"},
		{[]string{"--model", missing, "--gen-prompts", ""}, "--gen-prompts"},
		// Attention models: the prompt and the new tokens must fit max_position_embeddings (64).
		{[]string{"--config", cfg, "--phases", "generation", "--gen-prompts", "16,60", "--gen-tokens", "8"}, "--gen-prompts 60 with --gen-tokens 8"},
		{[]string{"--config", cfg, "--phases", "generation", "--gen-tokens", "64"}, "--gen-tokens 64"},
		{[]string{"--config", filepath.Join(t.TempDir(), "absent.json")}, "--config"},
	} {
		out, err := runCLI(t, append([]string{"bench"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench %v: error %v, want one containing %q\n%s", c.args, err, c.want, out)
		}
	}
}

// A tiny random model, one timed run per phase, as JSON: positive throughput, the FLOP count
// of the architecture, the matmul probe and memory.
func TestBenchJSON(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(tinyBenchConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "bench", "--config", cfg, "--batch", "2", "--length", "32", "--repeats", "1", "--matmul", "64", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	start := strings.Index(out, "{") // progress lines go to stderr, which runCLI mixes in
	var r struct {
		Model struct {
			Family string
			Params int
		}
		Matmul struct {
			GFLOPS  float64
			Layout  string
			Layouts []struct{ Layout string }
		} `json:"matmul_peak"`
		Scoring, Training struct {
			TokensPerS  float64 `json:"tokens_per_s"`
			FLOPs       float64
			Utilisation float64
			Memory      struct {
				PeakRSS int64 `json:"peak_rss_bytes"`
			}
		}
	}
	if start < 0 {
		t.Fatalf("no JSON in output:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out[start:]), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// 7,077,888 FLOPs per row of 32 tokens (worked out in package bench's tests).
	if r.Model.Family != "gemma" || r.Model.Params != 102_720 || !(r.Matmul.GFLOPS > 0) || r.Matmul.Layout == "" || len(r.Matmul.Layouts) != 2 ||
		!(r.Scoring.TokensPerS > 0) || !(r.Training.TokensPerS > 0) || r.Training.FLOPs != 3*2*7_077_888 ||
		!(r.Scoring.Utilisation > 0) || r.Training.Memory.PeakRSS <= 0 {
		t.Errorf("report %+v", r)
	}
	text, err := runCLI(t, "bench", "--config", cfg, "--batch", "1", "--length", "16", "--repeats", "1", "--matmul", "0", "--phases", "scoring")
	if err != nil || !strings.Contains(text, "scoring") || strings.Contains(text, "matmul:") || strings.Contains(text, "training:") {
		t.Errorf("text report (scoring only, no matmul): %v\n%s", err, text)
	}
}

// genReport is the generation part of the JSON report.
type genReport struct {
	Generation *struct {
		NewTokens   int `json:"new_tokens"`
		DecodeSteps int `json:"decode_steps"`
		Prompts     []struct {
			PromptTokens      int       `json:"prompt_tokens"`
			CachePositions    int       `json:"cache_positions"`
			CacheBytes        int64     `json:"cache_bytes"`
			Seconds           []float64 `json:"seconds"`
			PrefillSeconds    []float64 `json:"prefill_seconds"`
			PrefillMedianS    float64   `json:"prefill_median_s"`
			PrefillTokensPerS float64   `json:"prefill_tokens_per_s"`
			DecodeSeconds     []float64 `json:"decode_seconds"`
			DecodeMsPerToken  float64   `json:"decode_ms_per_token"`
			DecodeTokensPerS  float64   `json:"decode_tokens_per_s"`
			Memory            struct {
				PeakRSS int64 `json:"peak_rss_bytes"`
			}
		}
	}
	Scoring, Training *struct{}
}

// benchGeneration runs the generation phase on config as JSON and checks one entry per prompt
// length, in order, with positive numbers and one time per timed run.
func benchGeneration(t *testing.T, config string, prompts []int, newTokens int, args ...string) genReport {
	t.Helper()
	out, err := runCLI(t, append([]string{"bench", "--config", writeConfig(t, config), "--phases", "generation", "--repeats", "2", "--matmul", "0", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	start := strings.Index(out, "{")
	var r genReport
	if start < 0 {
		t.Fatalf("no JSON in output:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out[start:]), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	g := r.Generation
	if g == nil || r.Scoring != nil || r.Training != nil {
		t.Fatalf("want the generation phase only:\n%s", out)
	}
	if g.NewTokens != newTokens || g.DecodeSteps != newTokens-1 || len(g.Prompts) != len(prompts) {
		t.Fatalf("generation %+v, want %d new tokens on prompts %v", g, newTokens, prompts)
	}
	for i, p := range g.Prompts {
		if p.PromptTokens != prompts[i] || p.CachePositions < prompts[i]+newTokens || p.CacheBytes <= 0 ||
			len(p.Seconds) != 2 || len(p.PrefillSeconds) != 2 || len(p.DecodeSeconds) != 2 ||
			!(p.PrefillMedianS > 0) || !(p.PrefillTokensPerS > 0) || !(p.DecodeMsPerToken > 0) || !(p.DecodeTokensPerS > 0) ||
			p.Memory.PeakRSS <= 0 {
			t.Errorf("prompt %d: %+v", prompts[i], p)
		}
	}
	return r
}

// The generation phase on a tiny Gemma: the KV cache Generate allocates grows with the prompt.
// Left unset, --length (256) is past the 64-token window but only scoring and training read it,
// and the default prompts 16 and 256 are lowered to fit the window with the 32 new tokens.
func TestBenchGenerationGemma(t *testing.T) {
	r := benchGeneration(t, tinyBenchConfig, []int{8, 24}, 8, "--gen-prompts", "8,24", "--gen-tokens", "8")
	if p := r.Generation.Prompts; p[0].CacheBytes >= p[1].CacheBytes {
		t.Errorf("KV cache of %d bytes for 8 tokens, %d for 24", p[0].CacheBytes, p[1].CacheBytes)
	}
	text, err := runCLI(t, "bench", "--config", writeConfig(t, tinyBenchConfig), "--phases", "generation", "--repeats", "1", "--matmul", "0")
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !strings.Contains(text, "generation: greedy Generate") || !strings.Contains(text, "32 new tokens per run") ||
		!strings.Contains(text, "decode ms/token") || strings.Contains(text, "training:") || strings.Contains(text, "batch 8") {
		t.Errorf("text report:\n%s", text)
	}
	var rows []string
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "16" || f[0] == "32") {
			rows = append(rows, line)
		}
	}
	if len(rows) != 2 {
		t.Errorf("want a line for the prompts 16 and 32 (256 lowered to 64 - 32):\n%s", text)
	}
}

// The generation phase on a tiny Mamba: no window, so the default prompts 16 and 256 run as
// they are, and the recurrent state has the same size for both.
func TestBenchGenerationMamba(t *testing.T) {
	r := benchGeneration(t, tinyBenchMamba, []int{16, 256}, 4, "--gen-tokens", "4")
	if p := r.Generation.Prompts; p[0].CacheBytes != p[1].CacheBytes {
		t.Errorf("recurrent state of %d bytes after 16 tokens, %d after 256", p[0].CacheBytes, p[1].CacheBytes)
	}
}
