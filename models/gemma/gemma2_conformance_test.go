package gemma_test

import (
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// The lm.Architecture contract on every Gemma 2 / Gemma 3 golden fixture of
// testdata/make_golden2.py (see fixtures23), sequences longer than the sliding windows included.
func TestGemma23Conformance(t *testing.T) {
	lmtest.Conformance(t, fixtures23...)
}
