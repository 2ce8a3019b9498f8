package training_test

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/training"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// The bench's step trains (the loss on its fixed batch falls), packs full rows with a few
// documents each, and leaves the model's own weights alone.
func TestBenchStep(t *testing.T) {
	for _, cfg := range []map[string]any{zootest.TinyGemma, zootest.TinyMamba} {
		t.Run(cfg["model_type"].(string), func(t *testing.T) {
			_, m, _ := tinyModel(t, cfg)
			before := tensors.MustCopyFlatData[float32](m.WeightList()[0])
			tb, err := training.NewBench(m, 2, 64, 1)
			if err != nil {
				t.Fatal(err)
			}
			if tb.Tokens() != 128 || tb.Targets() != 2*(64-4) {
				t.Errorf("tokens %d, targets %d; want 128 and 120 (4 documents per 64-token row, each last token without a target)", tb.Tokens(), tb.Targets())
			}
			var losses []float64
			for range 4 {
				s, err := tb.Step()
				if err != nil {
					t.Fatal(err)
				}
				if s.Count != 120 || !(s.GradNorm > 0) {
					t.Fatalf("step stats %+v: want 120 targets and a positive gradient norm", s)
				}
				losses = append(losses, s.Loss())
			}
			if !(losses[3] < losses[0]) {
				t.Errorf("loss did not fall on the repeated batch: %v", losses)
			}
			after := tensors.MustCopyFlatData[float32](m.WeightList()[0])
			for i := range before {
				if before[i] != after[i] {
					t.Fatal("the bench changed the model's weights")
				}
			}
			if e := tb.Memory(m); e.Total <= e.Weights || e.Activations <= 0 {
				t.Errorf("memory estimate %+v", e)
			}
		})
	}
}

func TestBenchRefusesBadShapes(t *testing.T) {
	_, m, _ := tinyModel(t, zootest.TinyGemma) // max_position_embeddings 1024
	for _, c := range []struct {
		batch, length int
		want          string
	}{{0, 64, "batch 0"}, {2, 1, "length 1"}, {1, 2048, "maximum length 1024"}} {
		if _, err := training.NewBench(m, c.batch, c.length, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewBench(batch %d, length %d): error %v, want one naming %q", c.batch, c.length, err, c.want)
		}
	}
}
