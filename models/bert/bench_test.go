package bert

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkEmbed measures embedding throughput of the tiny fixture encoder (64 texts per op).
func BenchmarkEmbed(b *testing.B) {
	enc, err := Load(filepath.Join("testdata", "tiny"))
	if err != nil {
		b.Fatal(err)
	}
	texts := make([]string, 64)
	for i := range texts {
		texts[i] = fmt.Sprintf("How much does the Acme widget number %d weigh in kilograms?", i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := enc.Embed(texts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(texts)*b.N)/b.Elapsed().Seconds(), "texts/s")
}
