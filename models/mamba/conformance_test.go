package mamba

import (
	"path/filepath"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// The lm.Architecture contract on every golden fixture of testdata/make_golden.py: conv_kernel 4
// and 2, with and without biases, state sizes 16 and 4, tied and untied head, f32 and bf16
// weights.
func TestConformance(t *testing.T) {
	var fixtures []lmtest.Fixture
	for _, name := range []string{"k4_bias_s16", "k2_nobias_s4", "k4_bf16"} {
		fixtures = append(fixtures, lmtest.Fixture{Dir: filepath.Join("testdata", name)})
	}
	lmtest.Conformance(t, fixtures...)
}

// The same contract with Step's mixer split into channel groups (which Step does only for
// chunks of at least stepGroupsMin state elements, far above these fixtures'): each group
// continues from its slice of the cached conv window and SSM state.
func TestConformanceGroupedStep(t *testing.T) {
	if 32%mixerGroups != 0 || 48%mixerGroups != 0 {
		t.Fatalf("the fixtures' d_inner (32, 48) must divide into %d groups", mixerGroups)
	}
	defer func(v int) { stepGroupsMin = v }(stepGroupsMin)
	stepGroupsMin = 0
	var fixtures []lmtest.Fixture
	for _, name := range []string{"k4_bias_s16", "k2_nobias_s4", "k4_bf16"} {
		fixtures = append(fixtures, lmtest.Fixture{Dir: filepath.Join("testdata", name)})
	}
	lmtest.Conformance(t, fixtures...)
}
