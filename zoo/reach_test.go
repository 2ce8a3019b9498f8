package zoo

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// The reach drills put their lookups exactly at the named distance: a copy drill's span repeats
// after gap tokens, a recall drill has n pairs and min(n, reachQueries) queries of them.
func TestReachDrillShapes(t *testing.T) {
	vocab := make([]int32, 300)
	for i := range vocab {
		vocab[i] = int32(264 + i)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, gap := range []int{0, 5, 100} {
		ex := gapCopyDrill(vocab, gap, rng)
		if len(ex.IDs) != 2*reachSpan+gap {
			t.Fatalf("gap %d: %d tokens", gap, len(ex.IDs))
		}
		for i := range reachSpan {
			if ex.IDs[i] != ex.IDs[reachSpan+gap+i] || ex.Train[reachSpan+gap+i] != (i > 0) || ex.Train[i] {
				t.Fatalf("gap %d: token %d is not the span's repeat target", gap, i)
			}
		}
	}
	for _, n := range []int{3, 8, 50} {
		ex := pairsRecallDrill(vocab, n, rng)
		q := min(n, reachQueries)
		if len(ex.IDs) != 2*n+2*q {
			t.Fatalf("%d pairs: %d tokens", n, len(ex.IDs))
		}
		value := map[int32]int32{}
		for i := 0; i < 2*n; i += 2 {
			if _, dup := value[ex.IDs[i]]; dup {
				t.Fatalf("%d pairs: key %d twice", n, ex.IDs[i])
			}
			value[ex.IDs[i]] = ex.IDs[i+1]
		}
		for i := 2 * n; i < len(ex.IDs); i += 2 {
			if !ex.Train[i+1] || ex.Train[i] || value[ex.IDs[i]] != ex.IDs[i+1] {
				t.Fatalf("%d pairs: query at %d", n, i)
			}
		}
	}
}

// LookupReach gives one point per distance with every target counted, and refuses a model whose
// window or vocabulary cannot hold the drills.
func TestLookupReach(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	cfg := map[string]any{"vocab_size": 300}
	for k, v := range tinyConfig(t).Models["gemma-tiny"].Config {
		cfg[k] = v
	}
	if err := RandomModel(dir, cfg, 3); err != nil {
		t.Fatal(err)
	}
	m, err := lm.Load(dir, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pts, err := LookupReach(m, []int{0, 32}, []int{4, 16}, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []ReachPoint{{Drill: "copy", Distance: 0, Targets: 3 * (reachSpan - 1)}, {Drill: "copy", Distance: 32, Targets: 3 * (reachSpan - 1)},
		{Drill: "recall", Distance: 4, Targets: 3 * 4}, {Drill: "recall", Distance: 16, Targets: 3 * reachQueries}}
	if len(pts) != len(want) {
		t.Fatalf("%d points, want %d", len(pts), len(want))
	}
	for i, p := range pts {
		if p.Drill != want[i].Drill || p.Distance != want[i].Distance || p.Targets != want[i].Targets || p.Accuracy < 0 || p.Accuracy > 1 {
			t.Errorf("point %d = %+v, want %+v with accuracy in [0, 1]", i, p, want[i])
		}
	}
	if _, err := LookupReach(m, []int{2000}, nil, 1, 1); err == nil || !strings.Contains(err.Error(), "window") {
		t.Errorf("a drill over the window: error %v", err)
	}
	if _, err := LookupReach(m, nil, []int{400}, 1, 1); err == nil || !strings.Contains(err.Error(), "tokens past id") {
		t.Errorf("more pairs than the vocabulary: error %v", err)
	}
}
