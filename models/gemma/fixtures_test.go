package gemma

// Test helpers: the golden fixture folders written by testdata/make_golden.py, read and run through
// models/internal/goldentest (a minimal reader independent of models/lm, so the golden tests
// check the graph code on its own).

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

var fixtureNames = []string{"mha", "mqa", "gqa_sharded", "gqa_bf16"}

// golden is the content of testdata/<model>/golden.json (see make_golden.py).
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
	name    string
	model   *Model
	weights map[string]goldentest.Tensor // by Hugging Face name, as stored (aliases included)
	golden  golden
}

func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	dir := filepath.Join("testdata", name)
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	arch, err := lm.NewArchitecture(raw)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	f := &fixture{name: name, model: arch.(*Model)}
	if f.weights, err = goldentest.ReadWeights(dir); err != nil {
		t.Fatal(err)
	}
	goldentest.ReadJSON(t, dir, "golden.json", &f.golden)
	return f
}

// paramTensors returns the model's parameters in Specs order as tensors of dtype.
func (f *fixture) paramTensors(t testing.TB, dtype dtypes.DType) []*tensors.Tensor {
	t.Helper()
	p, err := goldentest.ParamTensors(f.name, f.model.Specs(), f.weights, dtype)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// batch is a packed, padded batch: rows of tokens with per-token positions and segment ids.
type batch struct {
	tokens, positions, segments [][]int32
}

// row appends documents packed into one row, padded with segment 0 up to width.
func (b *batch) row(width int, docs ...[]int32) {
	var tok, pos, seg []int32
	for i, d := range docs {
		for j, id := range d {
			tok, pos, seg = append(tok, id), append(pos, int32(j)), append(seg, int32(i+1))
		}
	}
	for len(tok) < width {
		tok, pos, seg = append(tok, 0), append(pos, 0), append(seg, 0)
	}
	b.tokens, b.positions, b.segments = append(b.tokens, tok), append(b.positions, pos), append(b.segments, seg)
}

// logits runs Model.Logits on a batch with parameters of dtype; returns [B][T][V].
func (f *fixture) logits(t testing.TB, dtype dtypes.DType, b batch) [][][]float32 {
	t.Helper()
	return goldentest.Logits(t, f.model, f.paramTensors(t, dtype), b.tokens, b.positions, b.segments)
}
