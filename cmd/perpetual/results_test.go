package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResultsCommand(t *testing.T) {
	dir := t.TempDir()
	suite := filepath.Join(dir, "s.yaml")
	os.WriteFile(suite, []byte(`name: cli
tasks:
  - name: code
    synthetic: {kind: code, seed: 2, chunks: 6, facts_per_chunk: 2}
models:
  - name: tiny
    path: ${TINY_MODEL}
conditions: [base, rag]
formulations: [letters]
eval: {limit: 5, bootstrap: 100}
`), 0o644)
	out := filepath.Join(dir, "results")
	args := []string{"results", "--suite", suite, "--out", out, "--var", "TINY_MODEL=zoo:gemma-tiny", "--png=false", "--quiet"}
	msg, err := runCLI(t, args...)
	if err != nil || !strings.Contains(msg, "2 cells (2 evaluated, 0 cached)") {
		t.Fatalf("first run: %v\n%s", err, msg)
	}
	for _, f := range []string{"results.md", "results.json", "timings.md", "timings.json", "charts/accuracy-code-letters.html",
		"samples/code/tiny/rag/samples_perpetual_letters.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	msg, err = runCLI(t, args...)
	if err != nil || !strings.Contains(msg, "2 cells (0 evaluated, 2 cached), 0 fine-tuned, 0 curricula and 0 indexes built") {
		t.Fatalf("second run: %v\n%s", err, msg)
	}
	// Without Chromium the default run still succeeds, with HTML charts and a warning; asking for
	// PNGs explicitly fails before any work is done.
	t.Setenv("PATH", t.TempDir())
	t.Setenv("PERPETUAL_CHROMIUM", "")
	noBrowser := filepath.Join(dir, "no-browser")
	msg, err = runCLI(t, "results", "--suite", suite, "--out", noBrowser, "--var", "TINY_MODEL=zoo:gemma-tiny", "--quiet")
	if err != nil || !strings.Contains(msg, "PNG charts skipped") {
		t.Fatalf("run without Chromium: %v\n%s", err, msg)
	}
	if _, err := os.Stat(filepath.Join(noBrowser, "charts", "accuracy-code-letters.html")); err != nil {
		t.Error(err)
	}
	if pngs, _ := filepath.Glob(filepath.Join(noBrowser, "charts", "*.png")); len(pngs) != 0 {
		t.Errorf("PNGs without a browser: %v", pngs)
	}
	explicit := filepath.Join(dir, "explicit-png")
	msg, err = runCLI(t, "results", "--suite", suite, "--out", explicit, "--var", "TINY_MODEL=zoo:gemma-tiny", "--png", "--quiet")
	if err == nil || !strings.Contains(err.Error(), "Chromium") {
		t.Fatalf("--png without Chromium: %v\n%s", err, msg)
	}
	if _, err := os.Stat(filepath.Join(explicit, "results.md")); err == nil {
		t.Error("--png without Chromium ran the suite before failing")
	}
	for _, bad := range [][]string{
		{"results", "--suite", suite, "--out", out, "--quiet"}, // ${TINY_MODEL} unset
		{"results", "--suite", suite, "--out", out, "--var", "novalue", "--quiet"},
		{"results", "--suite", filepath.Join(dir, "none.yaml"), "--out", out},
	} {
		os.Unsetenv("TINY_MODEL")
		if msg, err := runCLI(t, bad...); err == nil {
			t.Errorf("%v: no error\n%s", bad, msg)
		}
	}
}
