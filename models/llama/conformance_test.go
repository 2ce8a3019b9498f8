package llama

import (
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// The lm.Architecture contract on every golden fixture of testdata/make_golden.py (see fixtures).
func TestConformance(t *testing.T) {
	lmtest.Conformance(t, fixtures...)
}
