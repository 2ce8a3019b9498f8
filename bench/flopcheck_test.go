package bench

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm"

	_ "github.com/perpetual-ml/perpetual/models/llama"
)

// TestScoringPerCPUSecond is scripts/flop_check.sh's in-process variant (INPROCESS=1): the
// families of PERPETUAL_FLOP_CHECK ("name=config.json,..."; the first is the baseline) are
// built with random weights in one process, each scoring call compiled once, then the
// families take turns, the order reversed every other round, 6 rounds of LogLikelihood on 4
// requests of 256 tokens. It logs each family's CPU seconds per call and GFLOP per CPU second,
// and its ratio to the baseline of the same round: the comparison least disturbed by other
// processes. A name ending in "-nocaps" drops Gemma 2's soft caps from its config (what they
// cost). Skipped unless PERPETUAL_FLOP_CHECK is set.
func TestScoringPerCPUSecond(t *testing.T) {
	spec := os.Getenv("PERPETUAL_FLOP_CHECK")
	if spec == "" {
		t.Skip("set PERPETUAL_FLOP_CHECK=name=config.json,... (scripts/flop_check.sh with INPROCESS=1)")
	}
	const batch, length, rounds = 4, 256, 6
	type family struct {
		name  string
		model *lm.Model
		flops float64
		cpu   []float64
	}
	var fams []*family
	for item := range strings.SplitSeq(spec, ",") {
		name, path, _ := strings.Cut(item, "=")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "-nocaps") {
			var c map[string]any
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			c["final_logit_softcapping"], c["attn_logit_softcapping"] = nil, nil
			if raw, err = json.Marshal(c); err != nil {
				t.Fatal(err)
			}
		}
		m, err := RandomModel(raw, 1, lm.LoadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		counter, ok := m.Arch().(lm.FLOPCounter)
		if !ok {
			t.Fatalf("%s: %s counts no FLOPs", path, m.Arch().Family())
		}
		fams = append(fams, &family{name: name, model: m, flops: batch * counter.LogitsFLOPs(length)})
	}
	reqs, err := scoringRequests(batch, length, fams[0].model.Arch().VocabSize(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.model.Arch().VocabSize() != fams[0].model.Arch().VocabSize() {
			t.Fatalf("%s: vocabulary %d, the baseline's %d", f.name, f.model.Arch().VocabSize(), fams[0].model.Arch().VocabSize())
		}
		if _, err := f.model.LogLikelihood(reqs, batch); err != nil { // compiles
			t.Fatal(err)
		}
	}
	for round := range rounds {
		order := slices.Clone(fams)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, f := range order {
			c0, ok0 := cpuSeconds()
			if _, err := f.model.LogLikelihood(reqs, batch); err != nil {
				t.Fatal(err)
			}
			c1, ok1 := cpuSeconds()
			if !ok0 || !ok1 {
				t.Skip("no CPU time on this system")
			}
			f.cpu = append(f.cpu, c1-c0)
		}
	}
	base := fams[0]
	t.Logf("%d rounds of %d x %d tokens; GFLOP per CPU second, median (range); ratio to %s of the same round, median (range)", rounds, batch, length, base.name)
	for _, f := range fams {
		var rate, ratio []float64
		for i, c := range f.cpu {
			rate = append(rate, f.flops/c/1e9)
			ratio = append(ratio, (f.flops/c)/(base.flops/base.cpu[i]))
		}
		rm, rlo, rhi := summarize(rate)
		qm, qlo, qhi := summarize(ratio)
		t.Logf("%-14s %.1f (%.1f-%.1f) GFLOP/CPU s   vs %s %.2f (%.2f-%.2f)", f.name, rm, rlo, rhi, base.name, qm, qlo, qhi)
	}
}
