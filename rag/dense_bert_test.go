package rag_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/models/bert"
	"github.com/perpetual-ml/perpetual/models/bert/berttest"
	"github.com/perpetual-ml/perpetual/rag"
)

// The tiny BERT fixture of models/bert (random weights, golden-checked there).
var tinyBERT = berttest.TinyDir()

// loadBERT is the encoder loader every dense index here is built and opened with.
func loadBERT(dir string) (rag.Embedder, error) { return bert.Load(dir) }

func TestDenseAndHybridSaveOpenWithBERT(t *testing.T) {
	chunks := []curriculum.Chunk{
		{ID: "a", Source: "t", Text: "The Acme widget weighs three kilograms."},
		{ID: "b", Source: "t", Text: "How much does the widget cost?"},
		{ID: "c", Source: "t", Text: "Cobra commands run hooks before and after."},
		{ID: "d", Source: "t", Text: "The price is twelve dollars."},
	}
	queries := []string{"How much does the Acme widget weigh?", "cobra hooks", "price"}
	for _, kind := range []string{rag.KindDense, rag.KindHybrid} {
		t.Run(kind, func(t *testing.T) {
			x, err := rag.Build(chunks, rag.Options{Kind: kind, Dense: rag.DenseOptions{ModelDir: tinyBERT, Load: loadBERT}})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "idx")
			if err := x.Save(dir); err != nil {
				t.Fatal(err)
			}
			y, err := rag.Open(dir, loadBERT)
			if err != nil {
				t.Fatal(err)
			}
			if y.Kind() != kind || y.Len() != len(chunks) {
				t.Fatalf("opened kind %s len %d", y.Kind(), y.Len())
			}
			for _, q := range queries {
				a, err := x.Retrieve(q, 3)
				if err != nil {
					t.Fatal(err)
				}
				b, err := y.Retrieve(q, 3)
				if err != nil {
					t.Fatal(err)
				}
				if len(a) != 3 || !reflect.DeepEqual(a, b) {
					t.Errorf("query %q: before save %+v, after open %+v", q, a, b)
				}
			}
		})
	}
	// A missing model folder is a clear error naming it.
	_, err := rag.Build(chunks, rag.Options{Kind: rag.KindDense, Dense: rag.DenseOptions{ModelDir: filepath.Join(t.TempDir(), "nope"), Load: loadBERT}})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing model folder: %v", err)
	}
}

// An index remembers its encoder: opening it with a folder whose weights differ is an error
// that says to rebuild, while an identical copy of the encoder is accepted.
func TestDenseIndexRefusesAnotherEncoder(t *testing.T) {
	chunks := []curriculum.Chunk{
		{ID: "a", Source: "t", Text: "The Acme widget weighs three kilograms."},
		{ID: "b", Source: "t", Text: "Cobra commands run hooks before and after."},
	}
	x, err := rag.Build(chunks, rag.Options{Kind: rag.KindDense, Dense: rag.DenseOptions{ModelDir: tinyBERT, Load: loadBERT}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "idx")
	if err := x.Save(dir); err != nil {
		t.Fatal(err)
	}
	m, err := rag.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Dense.EncoderHash) != 64 {
		t.Fatalf("meta.json encoder_hash = %q, want a SHA-256", m.Dense.EncoderHash)
	}
	same, changed := berttest.CopyTiny(t), berttest.CopyTiny(t)
	berttest.PerturbWeight(t, changed)
	if _, err := rag.OpenWith(dir, rag.Options{Dense: rag.DenseOptions{ModelDir: same, Load: loadBERT}}); err != nil {
		t.Fatalf("identical encoder copy refused: %v", err)
	}
	_, err = rag.OpenWith(dir, rag.Options{Dense: rag.DenseOptions{ModelDir: changed, Load: loadBERT}})
	if err == nil || !strings.Contains(err.Error(), "rebuild") || !strings.Contains(err.Error(), changed) {
		t.Fatalf("changed encoder: got %v, want an error naming %s and saying to rebuild", err, changed)
	}
}
