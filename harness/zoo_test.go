package harness

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// countingZoo is a Zoo test double that writes a config.json and counts its builds.
type countingZoo struct{ builds int }

func (z *countingZoo) Resolve(name, cacheDir string) (string, error) {
	z.builds++
	d := filepath.Join(cacheDir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	return d, os.WriteFile(filepath.Join(d, "config.json"), []byte("{}"), 0o644)
}

func TestResolveModel(t *testing.T) {
	dir := t.TempDir()
	if _, err := ResolveModel("zoo:nonesuch", dir, zootest.Random{}); err == nil || !strings.Contains(err.Error(), "gemma-tiny") {
		t.Errorf("unknown zoo entry: %v", err)
	}
	if _, err := ResolveModel("zoo:gemma-tiny", dir, nil); err == nil || !strings.Contains(err.Error(), "Options.Zoo") {
		t.Errorf("no zoo: %v", err)
	}
	if _, err := ResolveModel(filepath.Join(dir, "missing"), dir, zootest.Random{}); err == nil {
		t.Error("missing folder: no error")
	}
	z := &countingZoo{}
	got, err := ResolveModel("zoo:test-copy", dir, z)
	if err != nil || got != filepath.Join(dir, "test-copy") || z.builds != 1 {
		t.Fatalf("resolve: %q, %v, %d builds", got, err, z.builds)
	}
	// A folder path never reaches the zoo.
	if _, err := ResolveModel(got, dir, z); err != nil || z.builds != 1 {
		t.Fatalf("folder: %v, %d builds", err, z.builds)
	}
	// The random-init stand-ins give loadable models whose tokenizer covers the chat markers.
	m, enc, err := LoadForEval(mustResolve(t, dir), lm.LoadOptions{}, evaluation.EncodingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if enc.MaxLength != m.Arch().MaxLength() || enc.MaxLength == 0 {
		t.Errorf("gemma window %d, model's %d", enc.MaxLength, m.Arch().MaxLength())
	}
	ids := enc.Tokenizer.Encode("<start_of_turn>user\nHello<end_of_turn>")
	if m.Arch().VocabSize() != 512 || len(ids) == 0 || ids[0] != 4 || !enc.AddBOS {
		t.Errorf("random model: vocab %d, ids %v, addBOS %v", m.Arch().VocabSize(), ids, enc.AddBOS)
	}
	mambaDir, err := ResolveModel("zoo:mamba-tiny", dir, zootest.Random{})
	if err != nil {
		t.Fatal(err)
	}
	mm, menc, err := LoadForEval(mambaDir, lm.LoadOptions{}, evaluation.EncodingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Mamba reads any length, but lm-eval truncates its requests to 2048 (+1) tokens all the same.
	if mm.Arch().Family() != "mamba" || menc.AddBOS || mm.Arch().MaxLength() != 0 || menc.MaxLength != evaluation.DefaultMaxLength {
		t.Errorf("mamba-tiny: family %s, addBOS %v, window %d, evaluation max_length %d", mm.Arch().Family(), menc.AddBOS, mm.Arch().MaxLength(), menc.MaxLength)
	}
	// lm-eval's max_length and add_bos_token model arguments win over the model's.
	if _, menc, err = LoadForEval(mambaDir, lm.LoadOptions{}, evaluation.EncodingOptions{MaxLength: 4096, AddBOS: evaluation.BOSTrue}); err != nil || menc.MaxLength != 4096 || !menc.AddBOS {
		t.Errorf("mamba-tiny with options: %+v, %v", menc, err)
	}
	if _, _, err := LoadForEval(mustResolve(t, dir), lm.LoadOptions{}, evaluation.EncodingOptions{MaxLength: 1 << 20}); err == nil || !strings.Contains(err.Error(), "max_length") {
		t.Errorf("max_length over the Gemma window: %v", err)
	}
	raw, _ := os.ReadFile(filepath.Join(mustResolve(t, dir), "config.json"))
	var cfg map[string]any
	if json.Unmarshal(raw, &cfg) != nil || cfg["model_type"] != "gemma" {
		t.Errorf("config: %s", raw)
	}
}

func mustResolve(t *testing.T, dir string) string {
	t.Helper()
	got, err := ResolveModel("zoo:gemma-tiny", dir, zootest.Random{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
