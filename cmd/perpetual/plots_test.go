package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlotsCommand(t *testing.T) {
	out := t.TempDir()
	fixture := filepath.Join("..", "..", "plots", "testdata", "results")
	stdout, err := runCLI(t, "plots", fixture, "--out", out, "--png=false")
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	lines := strings.Fields(stdout)
	if len(lines) != 8 {
		t.Fatalf("want 8 charts, got:\n%s", stdout)
	}
	for _, l := range lines {
		if _, err := os.Stat(l); err != nil || !strings.HasSuffix(l, ".html") {
			t.Errorf("listed %s: %v", l, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "assets", "echarts.min.js")); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "plots", t.TempDir(), "--png=false"); err == nil || !strings.Contains(err.Error(), "results.json") {
		t.Fatalf("missing results.json: %v", err)
	}
}
