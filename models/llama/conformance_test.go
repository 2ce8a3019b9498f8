package llama

import (
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// The lm.Architecture contract on every golden fixture of testdata/make_golden.py (see fixtures).
func TestConformance(t *testing.T) {
	var fs []lmtest.Fixture
	for _, f := range fixtures {
		fs = append(fs, lmtest.Fixture{Dir: f.Dir, Tolerance: f.Tolerance, BFloat16Tolerance: f.BFloat16Tolerance})
	}
	lmtest.Conformance(t, fs...)
}
