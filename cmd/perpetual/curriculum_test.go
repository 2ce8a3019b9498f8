package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
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
