package gemma

import (
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// The lm.Architecture contract on every golden fixture of testdata/make_golden.py: multi-head,
// multi-query with an lm_head.weight alias, grouped-query with head_dim != hidden/heads in two
// shards, and bf16 weights (whose reference also has logits computed in bf16).
func TestConformance(t *testing.T) {
	var fixtures []lmtest.Fixture
	for _, name := range []string{"mha", "mqa", "gqa_sharded", "gqa_bf16"} {
		fixtures = append(fixtures, lmtest.Fixture{Dir: filepath.Join("testdata", name), BFloat16Tolerance: 3e-2})
	}
	lmtest.Conformance(t, fixtures...)
}
