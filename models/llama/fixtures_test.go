package llama

// Test helpers: the golden fixture folders written by testdata/make_golden.py, read by lmtest.Load
// with models/internal/goldentest's reader (a minimal one independent of models/lm, so the golden
// tests check the graph code on its own) and run through goldentest.
//
// The fixture list is what TestConformance (conformance_test.go) hands lmtest.Conformance; the
// tests here are the family-specific ones (configs, refusals, RoPE scaling, discriminating
// fixtures, save names, training, LoRA).

import (
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// fixtures are every folder testdata/make_golden.py writes:
//   - llama3_gqa: llama, llama3 rope_scaling, grouped-query attention, head_dim 12 != hidden/heads,
//     untied lm_head, two shards;
//   - qwen2_bias: qwen2, q/k/v biases and no o bias, multi-query, untied;
//   - qwen3_qknorm: qwen3, q_norm/k_norm, head_dim 16 != hidden/heads, tied head;
//   - llama_bf16: llama, bf16 weights, attention_bias and mlp_bias, linear rope_scaling ("type"
//     key), tied head also stored as lm_head.weight; its reference has bf16 logits too.
var fixtures = []lmtest.Fixture{
	{Dir: "testdata/llama3_gqa"},
	{Dir: "testdata/qwen2_bias"},
	{Dir: "testdata/qwen3_qknorm"},
	{Dir: "testdata/llama_bf16", BFloat16Tolerance: 3e-2},
}

// fixture is a golden folder read (config, weights as stored, golden.json, tolerances with their
// defaults) with its Llama/Qwen architecture.
type fixture struct{ *lmtest.Loaded }

// model is the fixture's architecture.
func (f *fixture) model() *Model { return f.Arch.(*Model) }

func loadFixture(t testing.TB, spec lmtest.Fixture) *fixture {
	t.Helper()
	return &fixture{lmtest.MustLoad(t, spec)}
}

// fixtureNamed returns the fixture whose folder is testdata/name.
func fixtureNamed(t testing.TB, name string) *fixture {
	t.Helper()
	return &fixture{lmtest.MustLoadNamed(t, fixtures, name)}
}
