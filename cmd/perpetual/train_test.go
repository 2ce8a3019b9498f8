package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

func TestTrainCommandStopAndResume(t *testing.T) {
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	if err := zoo.RandomModel(base, zootest.TinyMamba, 1); err != nil {
		t.Fatal(err)
	}
	c, err := synthetic.Build("products", synthetic.Options{Seed: 1, Chunks: 6, FactsPerChunk: 2})
	if err != nil {
		t.Fatal(err)
	}
	cdir := filepath.Join(tmp, "cur")
	if err := curriculum.Write(cdir, c); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	args := []string{"train", "--model", base, "--curriculum", cdir, "--out", out, "--epochs", "1", "--lr", "1e-3",
		"--batch-size", "2", "--accumulation", "1", "--max-length", "512", "--quiet", "--checkpoint-every", "1"}
	got, err := runCLI(t, append(args, "--stop-after-step", "1")...)
	if err != nil || !strings.Contains(got, "stopped after step 1") {
		t.Fatalf("%v\n%s", err, got)
	}
	got, err = runCLI(t, append(args, "--resume", "--stop-after-step", "0")...)
	if err != nil || !strings.Contains(got, "trained") || !strings.Contains(got, "validation loss") {
		t.Fatalf("%v\n%s", err, got)
	}
	if _, err := lm.Load(out, lm.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "train", "--model", base, "--curriculum", "", "--out", out); err == nil || !strings.Contains(err.Error(), "--curriculum") {
		t.Errorf("missing --curriculum: %v", err)
	}
}
