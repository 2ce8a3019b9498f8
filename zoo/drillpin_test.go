package zoo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/perpetual-ml/perpetual/training"
)

// The drills are part of every v3 phase key: changing how they are drawn would orphan the
// committed runs in zoo/runs. These hashes pin the draws of the short, long and reach drills.
func TestDrillDrawsArePinned(t *testing.T) {
	vocab := make([]int32, 700)
	for i := range vocab {
		vocab[i] = int32(300 + i)
	}
	hash := func(gen func(d int, rng *rand.Rand) training.Example) string {
		rng := rand.New(rand.NewPCG(11, 12))
		h := sha256.New()
		for d := range 64 {
			ex := gen(d, rng)
			fmt.Fprintf(h, "%v:%v\n", ex.Train, ex.IDs)
		}
		return hex.EncodeToString(h.Sum(nil))[:16]
	}
	for _, c := range []struct {
		name, want string
		gen        func(d int, rng *rand.Rand) training.Example
	}{
		{"short", "3fc3d9c91211aef9", func(d int, rng *rand.Rand) training.Example { return drill(vocab, 0, d, rng) }},
		{"long", "f121b9037d779b5d", func(d int, rng *rand.Rand) training.Example { return drill(vocab, 400, d, rng) }},
		{"copy", "a8157e0084a29e44", func(_ int, rng *rand.Rand) training.Example { return gapCopyDrill(vocab, 100, rng) }},
		{"recall", "e2525e8aa8860d06", func(_ int, rng *rand.Rand) training.Example { return pairsRecallDrill(vocab, 20, rng) }},
	} {
		if got := hash(c.gen); got != c.want {
			t.Errorf("%s drills hash to %s, want %s", c.name, got, c.want)
		}
	}
}
