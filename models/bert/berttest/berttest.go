// Package berttest gives tests outside models/bert the tiny random BERT fixture (golden-checked
// in models/bert) as a private copy they may change.
package berttest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/perpetual-ml/perpetual/models/safetensors"
)

// TinyDir is the committed fixture folder (config.json, vocab.txt, model.safetensors).
func TinyDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "tiny")
}

// CopyTiny copies the fixture's files into a new temporary folder and returns it.
func CopyTiny(t testing.TB) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range []string{"config.json", "vocab.txt", "model.safetensors"} {
		raw, err := os.ReadFile(filepath.Join(TinyDir(), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// PerturbWeight flips the lowest mantissa bit of the first word-embedding value in dir's
// model.safetensors: the smallest change that makes a different encoder.
func PerturbWeight(t testing.TB, dir string) {
	t.Helper()
	path := filepath.Join(dir, "model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := f.Info("embeddings.word_embeddings.weight")
	start := f.Header().DataStart
	f.Close()
	if !ok || info.DType != safetensors.F32 {
		t.Fatalf("%s: no F32 embeddings.word_embeddings.weight (%+v)", path, info)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[start+info.Begin] ^= 1
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
