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
