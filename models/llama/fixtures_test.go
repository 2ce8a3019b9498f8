package llama

// Test helpers: the golden fixture folders written by testdata/make_golden.py, read and run through
// models/internal/goldentest (a minimal reader independent of models/lm, so the golden tests
// check the graph code on its own).
//
// The fixture list is what TestConformance (conformance_test.go) hands lmtest.Conformance; the
// tests here are the family-specific ones (configs, refusals, RoPE scaling, discriminating
// fixtures, save names, training, LoRA).

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// fixtureSpec is one golden folder and the tolerances its reference allows (lmtest.Fixture's
// fields: zero means the default).
type fixtureSpec struct {
	// Dir is the folder: config.json, safetensors weights, golden.json.
	Dir string
	// Tolerance bounds the relative L2 error of float32 logits and gradients (0: 1e-4).
	Tolerance float64
	// BFloat16Tolerance bounds bfloat16 compute against logits_bf16 (0: 5e-2).
	BFloat16Tolerance float64
}

// fixtures are every folder testdata/make_golden.py writes:
//   - llama3_gqa: llama, llama3 rope_scaling, grouped-query attention, head_dim 12 != hidden/heads,
//     untied lm_head, two shards;
//   - qwen2_bias: qwen2, q/k/v biases and no o bias, multi-query, untied;
//   - qwen3_qknorm: qwen3, q_norm/k_norm, head_dim 16 != hidden/heads, tied head;
//   - llama_bf16: llama, bf16 weights, attention_bias and mlp_bias, linear rope_scaling ("type"
//     key), tied head also stored as lm_head.weight; its reference has bf16 logits too.
var fixtures = []fixtureSpec{
	{Dir: "testdata/llama3_gqa"},
	{Dir: "testdata/qwen2_bias"},
	{Dir: "testdata/qwen3_qknorm"},
	{Dir: "testdata/llama_bf16", BFloat16Tolerance: 3e-2},
}

func (f fixtureSpec) name() string { return filepath.Base(f.Dir) }

func (f fixtureSpec) tolerance() float64 {
	if f.Tolerance == 0 {
		return 1e-4
	}
	return f.Tolerance
}

// golden is the content of golden.json (see make_golden.py; lmtest.Golden's format).
type golden struct {
	Sequences    [][]int32   `json:"sequences"`
	Logits       [][]float64 `json:"logits"`
	LogitsBF16   [][]float64 `json:"logits_bf16"`
	WeightsDType string      `json:"weights_dtype"`
	Loss         struct {
		Tokens  []int32              `json:"tokens"`
		Targets []int32              `json:"targets"`
		Weights []float32            `json:"weights"`
		Value   float64              `json:"value"`
		Grads   map[string][]float64 `json:"grads"`
	} `json:"loss"`
}

type fixture struct {
	fixtureSpec
	config  []byte
	model   *Model
	weights map[string]goldentest.Tensor // by Hugging Face name, as stored (aliases included)
	golden  golden
}

func loadFixture(t testing.TB, spec fixtureSpec) *fixture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(spec.Dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	arch, err := lm.NewArchitecture(raw)
	if err != nil {
		t.Fatalf("%s: %v", spec.Dir, err)
	}
	f := &fixture{fixtureSpec: spec, config: raw, model: arch.(*Model)}
	if f.weights, err = goldentest.ReadWeights(spec.Dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(spec.Dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &f.golden); err != nil {
		t.Fatalf("%s/golden.json: %v", spec.Dir, err)
	}
	return f
}

// fixtureNamed returns the fixture whose folder is testdata/name.
func fixtureNamed(t testing.TB, name string) *fixture {
	t.Helper()
	for _, f := range fixtures {
		if f.name() == name {
			return loadFixture(t, f)
		}
	}
	t.Fatalf("no fixture %q", name)
	return nil
}

// paramTensors returns the model's parameters in Specs order as tensors of dtype.
func (f *fixture) paramTensors(t testing.TB, dtype dtypes.DType) []*tensors.Tensor {
	t.Helper()
	ps, err := goldentest.ParamTensors(f.name(), f.model.Specs(), f.weights, dtype)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}
