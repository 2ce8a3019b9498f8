package bert

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type goldenCase struct {
	Text      string    `json:"text"`
	Tokens    []string  `json:"tokens"`
	IDs       []int32   `json:"ids"`
	Embedding []float64 `json:"embedding"`
}

type golden struct {
	MaxLength int          `json:"max_length"`
	Cases     []goldenCase `json:"cases"`
}

func readGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "tiny", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("golden.json has no cases")
	}
	return g
}

// relErr is |a-b| / |b| over whole vectors.
func relErr(a []float32, b []float64) float64 {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - b[i]
		num += d * d
		den += b[i] * b[i]
	}
	return math.Sqrt(num / den)
}

func TestGoldenTokensAndEmbeddings(t *testing.T) {
	g := readGolden(t)
	enc, err := LoadWith(filepath.Join("testdata", "tiny"), Options{MaxLength: g.MaxLength})
	if err != nil {
		t.Fatal(err)
	}
	texts := make([]string, len(g.Cases))
	for i, c := range g.Cases {
		texts[i] = c.Text
		ids := enc.Tokenizer().Encode(c.Text, g.MaxLength)
		if len(ids) != len(c.IDs) {
			t.Fatalf("%q: ids %v, want %v", c.Text, ids, c.IDs)
		}
		for j := range ids {
			if ids[j] != c.IDs[j] {
				t.Fatalf("%q: ids %v, want %v", c.Text, ids, c.IDs)
			}
		}
	}
	all, err := enc.Embed(texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range g.Cases {
		if len(all[i]) != len(c.Embedding) {
			t.Fatalf("%q: dim %d, want %d", c.Text, len(all[i]), len(c.Embedding))
		}
		if e := relErr(all[i], c.Embedding); e > 1e-4 {
			t.Errorf("%q: relative error %g", c.Text, e)
		}
	}
	// Batch independence: each text alone gives the same vector as in the full batch.
	for i, c := range g.Cases {
		one, err := enc.Embed([]string{c.Text})
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(one[0], c.Embedding); e > 1e-4 {
			t.Errorf("%q alone: relative error %g", c.Text, e)
		}
		_ = i
	}
}

func copyTiny(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors", "vocab.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "tiny", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   string
	}{
		{"no config", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "config.json")) }, "config.json"},
		{"no vocab", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "vocab.txt")) }, "vocab"},
		{"no weights", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "model.safetensors")) }, "safetensors"},
		{"wrong shape", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "config.json")
			b, _ := os.ReadFile(p)
			var m map[string]any
			json.Unmarshal(b, &m)
			m["intermediate_size"] = m["intermediate_size"].(float64) + 1
			b, _ = json.Marshal(m)
			os.WriteFile(p, b, 0o644)
		}, "intermediate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTiny(t)
			c.break_(t, dir)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}
