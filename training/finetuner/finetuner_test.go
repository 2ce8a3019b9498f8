package finetuner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/harness"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/zoo/zootest"

	_ "github.com/perpetual-ml/perpetual/models/gemma"
)

func TestOptionsFromRecipe(t *testing.T) {
	o, err := Options(harness.Recipe{Epochs: 2, LearningRate: 1e-3, BatchSize: 8, SeqLen: 256,
		Extra: map[string]any{"warmup": 3, "lora_rank": 4, "order": "shuffled", "packing": false}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if o.Epochs != 2 || o.LR != 1e-3 || o.BatchSize != 2 || o.Accumulation != 4 || o.MaxLength != 256 || o.Seed != 5 ||
		o.WarmupSteps != 3 || o.LoRA == nil || o.LoRA.Rank != 4 || o.LoRA.Alpha != 8 || o.Order != "shuffled" || !o.NoPacking {
		t.Errorf("options %+v", o)
	}
	if o.ClipNorm != nil || o.WeightDecay != nil {
		t.Errorf("absent clip and weight_decay should take the trainer's defaults (nil), got %v %v", o.ClipNorm, o.WeightDecay)
	}
	// Zero is a value: no warm-up, no clipping, no decay (they used to become 5, 1.0 and 0.01).
	o, err = Options(harness.Recipe{Extra: map[string]any{"warmup": 0, "clip": 0, "weight_decay": 0.0}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	o.Out = "x"
	o.Defaults()
	if o.WarmupSteps != 0 || *o.ClipNorm != 0 || *o.WeightDecay != 0 {
		t.Errorf("zeros became warmup %d, clip %v, decay %v", o.WarmupSteps, *o.ClipNorm, *o.WeightDecay)
	}
	if _, err := Options(harness.Recipe{Extra: map[string]any{"warmup": -2}}, 1); err == nil {
		t.Error("negative warmup accepted")
	}
	if _, err := Options(harness.Recipe{Extra: map[string]any{"warmpu": 3}}, 1); err == nil || !strings.Contains(err.Error(), `unknown key "warmpu"`) {
		t.Errorf("typo accepted: %v", err)
	}
	if _, err := Options(harness.Recipe{Extra: map[string]any{"warmup": "x"}}, 1); err == nil {
		t.Error("non-numeric warmup accepted")
	}
	if o, err := Options(harness.Recipe{Extra: map[string]any{"retention": 16}}, 1); err != nil || o.RetentionLimit != 16 {
		t.Errorf("retention 16: %v, limit %d", err, o.RetentionLimit)
	}
	for _, bad := range []any{-1, 2.5} {
		if _, err := Options(harness.Recipe{Extra: map[string]any{"retention": bad}}, 1); err == nil {
			t.Errorf("retention %v accepted", bad)
		}
	}
	if o, err := Options(harness.Recipe{}, 1); err != nil || o.Paraphrases != nil {
		t.Errorf("no paraphrases key: %v, %v (want nil: all the curriculum has)", err, o.Paraphrases)
	}
	if o, err := Options(harness.Recipe{Extra: map[string]any{"paraphrases": 0}}, 1); err != nil || o.Paraphrases == nil || *o.Paraphrases != 0 {
		t.Errorf("paraphrases 0: %v, %v", err, o.Paraphrases)
	}
	for _, bad := range []any{-1, 1.5, "two"} {
		if _, err := Options(harness.Recipe{Extra: map[string]any{"paraphrases": bad}}, 1); err == nil || !strings.Contains(err.Error(), "paraphrases") {
			t.Errorf("paraphrases %v: got %v", bad, err)
		}
	}
}

// ValidateRecipe refuses what FineTune would refuse, before the harness does any work.
func TestValidateRecipe(t *testing.T) {
	ft := FineTuner{}
	if err := ft.ValidateRecipe(harness.Recipe{Epochs: 2, LearningRate: 1e-3, BatchSize: 8, SeqLen: 256, Extra: map[string]any{"retention": 4}}); err != nil {
		t.Fatalf("a good recipe: %v", err)
	}
	for _, r := range []harness.Recipe{
		{Extra: map[string]any{"warmpu": 3}},
		{LearningRate: -1},
		{Epochs: -2},
		{Extra: map[string]any{"mask": "answer"}},
	} {
		if err := ft.ValidateRecipe(r); err == nil {
			t.Errorf("recipe %+v accepted", r)
		}
	}
}

// The retention set is held out: none of its instructions is one of the zoo world's (what the
// zoo models were instruction-tuned on).
func TestRetentionSetIsHeldOut(t *testing.T) {
	set := RetentionSet(16)
	if len(set) != 16 {
		t.Fatalf("%d records", len(set))
	}
	zooWorld := synthetic.NewWorld(synthetic.WorldOptions{Seed: 1, Towns: 60, ReadingPassages: 100})
	taught := map[string]bool{}
	for _, p := range zooWorld.Pairs {
		taught[p.Instruction+"\x00"+p.Input] = true
	}
	for _, r := range set {
		if taught[r.Instruction+"\x00"+r.Input] {
			t.Errorf("retention prompt %q is in the zoo's instruction data", r.Instruction)
		}
	}
}

func TestFineTuneWritesLoadableModel(t *testing.T) {
	base, cdir := zootest.Folders(t, zootest.TinyGemma, 6)
	out := filepath.Join(t.TempDir(), "out")
	res, err := FineTuner{}.FineTune(context.Background(), harness.FineTuneRequest{BaseModel: base, Curriculum: cdir, Out: out,
		PromptFormat: "alpaca", Recipe: harness.Recipe{Epochs: 1, LearningRate: 1e-3, BatchSize: 2, SeqLen: 512,
			Extra: map[string]any{"retention": 3}}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// retention: 3 measures the held-out general instructions before and after.
	set := RetentionSet(3)
	if r := res.Retention; r == nil || r.Prompts != 3 || r.Prompt != set[0].Instruction || !(r.PerplexityBefore > 1) ||
		!(r.PerplexityAfter > 1) || r.PerplexityBefore == r.PerplexityAfter {
		t.Errorf("retention %+v", res.Retention)
	}
	if len(res.Loss) == 0 || res.Loss[len(res.Loss)-1].ValLoss == nil {
		t.Errorf("loss log %+v: want steps and a final validation loss", res.Loss)
	}
	m, err := lm.Load(out, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := lm.Load(base, lm.LoadOptions{})
	if m.Hash() == b.Hash() {
		t.Error("fine-tuned model equals the base")
	}
	for _, f := range []string{"tokenizer.json", "metrics.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoint")); err == nil {
		t.Error("checkpoint kept in the harness's model folder")
	}
}
