package llama

// Test helpers: the golden fixture folders written by testdata/make_golden.py, read and run through
// models/internal/goldentest (a minimal reader independent of models/lm, so the golden tests
// check the graph code on its own).
//
// The fixture list below is written as the shared conformance suite (models/lm/lmtest, not yet
// merged) takes it: once it lands, TestConformance is
//
//	var fs []lmtest.Fixture
//	for _, f := range fixtures {
//		fs = append(fs, lmtest.Fixture{Dir: f.Dir, Tolerance: f.Tolerance, BFloat16Tolerance: f.BFloat16Tolerance})
//	}
//	lmtest.Conformance(t, fs...)
//
// and the tests of llama_test.go and lm_test.go whose comment starts with "Conformance" can go
// (with the stepper and batch helpers); the family-specific ones (configs, refusals, RoPE
// scaling, discriminating fixtures, save names, training, LoRA) stay.

import (
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
	goldentest.ReadJSON(t, spec.Dir, "golden.json", &f.golden)
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
	return goldentest.ParamTensors(t, f.name(), f.model.Specs(), f.weights, dtype)
}

// batch is a packed, padded batch: rows of tokens with per-token positions and segment ids.
type batch struct {
	tokens, positions, segments [][]int32
}

// row appends documents packed into one row, padded with segment 0 up to width. Padding tokens
// and positions vary, so a leak of padding into real tokens cannot hide behind zeros.
func (b *batch) row(width int, docs ...[]int32) {
	var tok, pos, seg []int32
	for i, d := range docs {
		for j, id := range d {
			tok, pos, seg = append(tok, id), append(pos, int32(j)), append(seg, int32(i+1))
		}
	}
	for i := 0; len(tok) < width; i++ {
		tok, pos, seg = append(tok, int32(3+i%5)), append(pos, int32(i)), append(seg, 0)
	}
	b.tokens, b.positions, b.segments = append(b.tokens, tok), append(b.positions, pos), append(b.segments, seg)
}

// logits runs Model.Logits on a batch with parameters of dtype; returns [B][T][V].
func (f *fixture) logits(t testing.TB, dtype dtypes.DType, b batch) [][][]float32 {
	t.Helper()
	return goldentest.Logits(t, f.model, f.paramTensors(t, dtype), b.tokens, b.positions, b.segments)
}
