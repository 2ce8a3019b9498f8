package harness

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// is what harness-v1 computed: cached cells stay valid.
func TestCellKeyUnchangedWithoutOptions(t *testing.T) {
	parts := []any{"cell", "products", "gemma-tiny", "", results.Base, int64(0), "hash", "cur", "", 0, []string{"letters"}, EvalSettings{BatchSize: 8}, ""}
	legacy := keyOf(parts...)
	// The eval settings hash as before when the new fields are unset.
	if b, _ := json.Marshal(EvalSettings{BatchSize: 16, Bootstrap: 2000}); string(b) != `{"batch_size":16,"limit":0,"bootstrap":2000}` {
		t.Errorf("eval settings JSON changed: %s", b)
	}
	if got := cellKey(slices.Clone(parts), evaluation.TaskOptions{}, encodingInfo{enc: evaluation.Encoding{MaxLength: 1024}}); got != legacy {
		t.Errorf("key without options %s, harness-v1 %s", got, legacy)
	}
	empty := ""
	for name, k := range map[string]string{
		"chat_target_delimiter": cellKey(slices.Clone(parts), evaluation.TaskOptions{ChatTargetDelimiter: &empty}, encodingInfo{}),
		"strip_question":        cellKey(slices.Clone(parts), evaluation.TaskOptions{StripQuestion: true}, encodingInfo{}),
		"window":                cellKey(slices.Clone(parts), evaluation.TaskOptions{}, encodingInfo{enc: evaluation.Encoding{MaxLength: 2048}, changed: true}),
		"eval settings":         keyOf(append(slices.Clone(parts[:11]), EvalSettings{BatchSize: 8, EncodingOptions: evaluation.EncodingOptions{MaxLength: 64}}, "")...),
		"shared_context":        keyOf(append(slices.Clone(parts[:11]), EvalSettings{BatchSize: 8, SharedContext: true}, "")...),
	} {
		if k == legacy {
			t.Errorf("%s does not change the cell key", name)
		}
	}
}

// versionedGemma is Gemma under another model_type whose CodeVersion the test sets, standing
// for a family whose numerics changed.
type versionedGemma struct {
	lm.Architecture
	version *string
}

func (v versionedGemma) Family() string      { return "gemma_versioned" }
func (v versionedGemma) CodeVersion() string { return *v.version }

// Cells and fine-tunings are cached under the model's code version: after a family changes its
// CodeVersion, every cell of its models is evaluated and every fine-tuning trained again, and
// nothing is when it stays the same.
func TestCodeVersionInvalidatesCells(t *testing.T) {
	version := "1"
	lm.Register("gemma_versioned", func(raw json.RawMessage) (lm.Architecture, error) {
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, err
		}
		cfg["model_type"] = "gemma"
		gemma, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		inner, err := lm.NewArchitecture(gemma)
		if err != nil {
			return nil, err
		}
		return versionedGemma{Architecture: inner, version: &version}, nil
	})
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	if err := zoo.RandomModel(model, zootest.TinyGemma, 7); err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(model, "config.json")
	raw, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["model_type"] = "gemma_versioned"
	if raw, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	suite := `
name: versioned
tasks:
  - name: products
    synthetic: {kind: products, seed: 3, chunks: 6, facts_per_chunk: 2}
    rag: {k: 1}
models:
  - name: versioned
    path: ` + model + `
    prompt_format: gemma
conditions: [base, finetuned]
formulations: [letters]
training: {epochs: 1, lr: 0.001}
eval: {batch_size: 16, bootstrap: 100, limit: 3}
`
	tuner := &scaleTuner{}
	opt := Options{Out: filepath.Join(dir, "results"), Work: filepath.Join(dir, "work"), FineTuner: tuner}
	run := cellRunner(t, dir, "versioned.yaml", opt, 2)
	run(suite, 2)
	run(suite, 0)
	version = "2"
	run(suite, 2)
	if tuner.calls != 2 {
		t.Errorf("%d fine-tunings, want 2 (one per code version)", tuner.calls)
	}
	code, err := lm.CodeVersionOf(model)
	if err != nil || code != lm.Version+"/gemma_versioned/2" {
		t.Errorf("CodeVersionOf = %q, %v", code, err)
	}
}
