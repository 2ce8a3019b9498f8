package gemma_test

// Test helpers for Gemma 2 and Gemma 3 text: the golden fixture folders written by
// testdata/make_golden2.py, read by lmtest.Load with models/internal/goldentest's reader (a
// minimal one independent of models/lm, so the golden tests check the graph code on its own)
// and run through goldentest. These tests
// live in package gemma_test, apart from Gemma v1's (package gemma), and use only exported names.
//
// The fixture list is what TestGemma23Conformance (gemma2_conformance_test.go) hands
// lmtest.Conformance; the tests here are the family-specific ones (sliding windows, configs,
// refusals, discriminating fixtures, save names, training, LoRA).

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/gemma"
	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// fixtures23 are every folder testdata/make_golden2.py writes (sequences of 9, 20 and 5 tokens,
// the first two longer than every sliding window):
//   - gemma2_sharded: gemma2, layers 0 and 2 sliding (window 4), attention and final soft caps
//     that bend these weights' scores (2 and 5), query_pre_attn_scalar 12 != head_dim, grouped
//     query attention, two shards;
//   - gemma2_bf16: gemma2, bf16 weights, multi-query, window 5, soft caps absent (the config
//     class's 50 and 30 apply), tied head also stored as lm_head.weight; its reference has bf16
//     logits too;
//   - gemma3_pattern: gemma3_text, q/k norms, sliding_window_pattern 3 (layers 0 and 1 slide,
//     window 6), local RoPE base 10 against a global base 1000 with linear scaling, no soft caps;
//   - gemma3_layer_types: gemma3_text, layer_types (global, sliding, global) winning over a
//     sliding_window_pattern that would make every layer slide, window 3, a final soft cap.
var fixtures23 = []lmtest.Fixture{
	{Dir: "testdata/gemma2_sharded"},
	{Dir: "testdata/gemma2_bf16", BFloat16Tolerance: 3e-2},
	{Dir: "testdata/gemma3_pattern"},
	{Dir: "testdata/gemma3_layer_types"},
}

// fixture is a golden folder read (config, weights as stored, golden.json, tolerances with their
// defaults) with its Gemma 2/3 architecture.
type fixture struct{ *lmtest.Loaded }

// model is the fixture's architecture (a test may replace Arch with a changed config's).
func (f *fixture) model() *gemma.Model2 { return f.Arch.(*gemma.Model2) }

func loadFixture(t testing.TB, spec lmtest.Fixture) *fixture {
	t.Helper()
	return &fixture{lmtest.MustLoad(t, spec)}
}

// fixtureNamed returns the fixture whose folder is testdata/name.
func fixtureNamed(t testing.TB, name string) *fixture {
	t.Helper()
	return &fixture{lmtest.MustLoadNamed(t, fixtures23, name)}
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

// logits runs the fixture's model on a batch with its parameters in dtype; returns [B][T][V].
func (f *fixture) logits(t testing.TB, dtype dtypes.DType, b batch) [][][]float32 {
	t.Helper()
	return goldentest.Logits(t, f.model(), f.ParamTensors(t, dtype), b.tokens, b.positions, b.segments)
}

// stepper runs Step with the KV cache kept between calls, as a generation loop does.
type stepper struct {
	exec   *Exec
	params []any
	cache  []*tensors.Tensor
}

func newStepper(t *testing.T, f *fixture, maxLen int) *stepper {
	m := f.model()
	shapes := m.CacheShapes(maxLen, dtypes.Float32)
	if len(shapes) != 2*m.Config().NumHiddenLayers {
		t.Fatalf("CacheShapes: %d entries, want %d", len(shapes), 2*m.Config().NumHiddenLayers)
	}
	nParams, nCache := len(m.Specs()), len(shapes)
	exec, err := NewExec(goldentest.Backend(t), func(inputs []*Node) []*Node {
		p := goldentest.ParamsFrom(m.Specs(), inputs)
		logits, cache := m.Step(p, inputs[nParams:nParams+nCache], inputs[nParams+nCache], inputs[nParams+nCache+1])
		return append([]*Node{logits}, cache...)
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &stepper{exec: exec}
	for _, p := range f.ParamTensors(t, dtypes.Float32) {
		s.params = append(s.params, p)
	}
	for _, cs := range shapes {
		size := 1
		for _, d := range cs.Dimensions {
			size *= d
		}
		s.cache = append(s.cache, tensors.FromFlatDataAndDimensions(make([]float32, size), cs.Dimensions...))
	}
	return s
}

func (s *stepper) step(t *testing.T, tokens []int32, start int) [][]float32 {
	args := append([]any{}, s.params...)
	for _, c := range s.cache {
		args = append(args, c)
	}
	args = append(args, tensors.FromValue([][]int32{tokens}), tensors.FromScalar(int32(start)))
	out, err := s.exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	s.cache = out[1:]
	return out[0].Value().([][][]float32)[0]
}
