package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
)

func TestRagCommands(t *testing.T) {
	cur := filepath.Join(t.TempDir(), "cur")
	if out, err := runCLI(t, "curriculum", "build", "--source", "synthetic", "--task", "products", "--chunks", "12", "--quiet", "--out", cur); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	c, err := curriculum.Read(cur)
	if err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "idx")
	out, err := runCLI(t, "rag", "index", "--curriculum", cur, "--out", idx)
	if err != nil || !strings.Contains(out, "indexed 12 chunks (bm25)") {
		t.Fatalf("index: %v\n%s", err, out)
	}

	// A chunk's own title must retrieve that chunk first.
	target := c.Chunks[3]
	out, err = runCLI(t, "rag", "query", "--index", idx, "--k", "2", target.Title+" "+target.Text[:min(200, len(target.Text))])
	if err != nil {
		t.Fatalf("query: %v\n%s", err, out)
	}
	var hits []struct{ ChunkID string }
	if err := json.Unmarshal([]byte(out), &hits); err != nil || len(hits) != 2 || hits[0].ChunkID != target.ID {
		t.Fatalf("query returned %s (err %v), want %s first of 2", out, err, target.ID)
	}

	out, err = runCLI(t, "rag", "recall", "--index", idx, "--curriculum", cur)
	if err != nil {
		t.Fatalf("recall: %v\n%s", err, out)
	}
	var report struct {
		Questions int
		Recall    []float64
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || report.Questions != len(c.Test) || len(report.Recall) == 0 {
		t.Fatalf("recall report %s (err %v), want %d questions", out, err, len(c.Test))
	}
	for i := 1; i < len(report.Recall); i++ {
		if report.Recall[i] < report.Recall[i-1] {
			t.Fatalf("recall@k decreases with k: %v", report.Recall)
		}
	}

	if _, err := runCLI(t, "rag", "index", "--curriculum", filepath.Join(t.TempDir(), "missing"), "--out", idx); err == nil {
		t.Fatal("index of a missing curriculum: no error")
	}
}
