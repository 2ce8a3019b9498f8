package zoo

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

func TestTmpDiag(t *testing.T) {
	dir := os.Getenv("DIAG_MODEL")
	m, err := lm.Load(dir, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(os.Getenv("DIAG_TOK"))
	if err != nil {
		t.Fatal(err)
	}
	vocab := drillVocab(tok)
	rng := rand.New(rand.NewPCG(77, 78))
	for _, kind := range []string{"copy", "recall"} {
		hit, n := 0, 0
		nll := 0.0
		var seqs [][]int32
		var exs [][]bool
		for range 64 {
			var ex = copyDrill(vocab, rng)
			if kind == "recall" {
				ex = recallDrill(vocab, rng)
			}
			seqs = append(seqs, ex.IDs)
			exs = append(exs, ex.Train)
		}
		logits, err := m.Logits(seqs)
		if err != nil {
			t.Fatal(err)
		}
		for s, seq := range seqs {
			for i := 1; i < len(seq); i++ {
				if !exs[s][i] {
					continue
				}
				row := logits[s][i-1]
				best := 0
				for j, x := range row {
					if x > row[best] {
						best = j
					}
				}
				n++
				if int32(best) == seq[i] {
					hit++
				}
				mx := row[0]
				for _, x := range row {
					if x > mx {
						mx = x
					}
				}
				z := 0.0
				for _, x := range row {
					z += math.Exp(float64(x - mx))
				}
				nll += -(float64(row[seq[i]]-mx) - math.Log(z))
				if s == 0 && n < 4 {
					t.Logf("target %d best %d (%q vs %q)", seq[i], best, tok.Decode([]int32{seq[i]}), tok.Decode([]int32{int32(best)}))
				}
			}
		}
		t.Logf("%s drills: argmax accuracy %.3f, mean NLL %.3f (uniform over drill vocab %.2f) over %d targets", kind, float64(hit)/float64(n), nll/float64(n), math.Log(float64(len(vocab))), n)
	}
}
