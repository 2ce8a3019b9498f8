package build

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"

	"github.com/perpetual-ml/perpetual/curriculum/leakage"
	"github.com/perpetual-ml/perpetual/curriculum/perpetualfmt"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
)

// BenchmarkSyntheticDefault builds the three default synthetic knowledge bases (what the embedded
// default needs) and writes them.
func BenchmarkSyntheticDefault(b *testing.B) {
	for i := 0; i < b.N; i++ {
		for _, task := range synthetic.Tasks {
			out := filepath.Join(b.TempDir(), task)
			if _, err := Build(context.Background(), Options{Source: "synthetic", Task: task, Out: out, Seed: 1}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCodeCobraOffline walks github.com/spf13/cobra, chunks it, writes declaration
// questions with go/parser and writes the curriculum.
func BenchmarkCodeCobraOffline(b *testing.B) {
	cobra := testenv.ModuleDir(b, "github.com/spf13/cobra")
	for i := 0; i < b.N; i++ {
		out := filepath.Join(b.TempDir(), "cobra")
		if _, err := Build(context.Background(), Options{Source: "code", Teacher: "offline", Inputs: []string{cobra}, Out: out, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLeakageResearch reads the paper's research curriculum and computes its leakage report.
func BenchmarkLeakageResearch(b *testing.B) {
	dir := testenv.File(b, "the Perpetual reference data", "../../../shared/datasets/perpetual/research")
	for i := 0; i < b.N; i++ {
		c, err := perpetualfmt.ReadDir(dir, "research")
		if err != nil {
			b.Fatal(err)
		}
		leakage.Analyze(c, 0)
	}
}
