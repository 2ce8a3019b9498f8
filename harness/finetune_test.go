package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

func TestRunWithoutFineTunerFailsClearly(t *testing.T) {
	dir := t.TempDir()
	s, err := Parse([]byte(strings.Replace(miniSuite, "  - name: other\n    path: ${OTHER_MODEL}\n", "", 1)), "mini.yaml", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Conditions = []string{results.FineTuned}
	_, err = Run(context.Background(), s, Options{Out: filepath.Join(dir, "out"), Zoo: zootest.Random{}})
	if err == nil || !strings.Contains(err.Error(), "no fine-tuner") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("work was done before failing")
	}
}

// refusingTuner is a FineTuner whose ValidateRecipe refuses every recipe.
type refusingTuner struct{ scaleTuner }

func (*refusingTuner) ValidateRecipe(r Recipe) error { return fmt.Errorf("unknown key %q", "warmpu") }

// A recipe the fine-tuner refuses stops the run before any work (no curriculum, no cell).
func TestRecipeRefusedBeforeWork(t *testing.T) {
	dir := t.TempDir()
	s, err := Parse([]byte(miniSuite), "mini.yaml", dir, map[string]string{"OTHER_MODEL": dir})
	if err != nil {
		t.Fatal(err)
	}
	tuner := &refusingTuner{}
	out := filepath.Join(dir, "out")
	_, err = Run(context.Background(), s, Options{Out: out, FineTuner: tuner, Zoo: zootest.Random{}})
	if err == nil || !strings.Contains(err.Error(), "training") || !strings.Contains(err.Error(), "warmpu") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "cache", "curricula")); err == nil || tuner.calls != 0 {
		t.Fatalf("work was done before the recipe was refused (fine-tunings %d)", tuner.calls)
	}
}

// recipeTuner is scaleTuner recording the recipe of each fine-tuning by base model folder, and
// refusing a learning rate above 0.01 in ValidateRecipe.
type recipeTuner struct {
	scaleTuner
	mu      sync.Mutex
	recipes map[string]Recipe
}

func (rt *recipeTuner) ValidateRecipe(r Recipe) error {
	if r.LearningRate > 0.01 {
		return fmt.Errorf("lr %v is too high", r.LearningRate)
	}
	return nil
}

func (rt *recipeTuner) FineTune(ctx context.Context, req FineTuneRequest) (*FineTuneResult, error) {
	rt.mu.Lock()
	rt.recipes[filepath.Base(req.BaseModel)] = req.Recipe
	rt.mu.Unlock()
	return rt.scaleTuner.FineTune(ctx, req)
}

// A model's training section overrides the suite's recipe key by key, for that model only: the
// fine-tuner receives the merged recipe, the other model the suite's; an override the
// fine-tuner refuses stops the run before any work, naming the model.
func TestModelTrainingOverridesSuiteRecipe(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other-model")
	if err := zoo.RandomModel(other, zootest.TinyMamba, 7); err != nil {
		t.Fatal(err)
	}
	suite := strings.Replace(miniSuite, "    path: ${OTHER_MODEL}\n", "    path: ${OTHER_MODEL}\n    training: {lr: 0.003, warmup: 0}\n", 1)
	suite = strings.Replace(suite, "seeds: [1, 2]", "seeds: [1]\nconditions: [base, finetuned]", 1)
	s, err := Parse([]byte(suite), "mini.yaml", dir, map[string]string{"OTHER_MODEL": other})
	if err != nil {
		t.Fatal(err)
	}
	tuner := &recipeTuner{recipes: map[string]Recipe{}}
	if _, err := Run(context.Background(), s, Options{Out: filepath.Join(dir, "out"), FineTuner: tuner, Zoo: zootest.Random{}}); err != nil {
		t.Fatal(err)
	}
	if len(tuner.recipes) != 2 {
		t.Fatalf("fine-tuned %d base models, want 2: %v", len(tuner.recipes), tuner.recipes)
	}
	for base, r := range tuner.recipes {
		wantLR, wantExtra := 0.001, 0
		if base == "other-model" {
			wantLR, wantExtra = 0.003, 1
		}
		if r.LearningRate != wantLR || r.Epochs != 2 || len(r.Extra) != wantExtra {
			t.Errorf("%s was fine-tuned with %+v, want lr %v, 2 epochs and %d extra keys", base, r, wantLR, wantExtra)
		}
	}
	if s.Training.LearningRate != 0.001 || len(s.Training.Extra) != 0 {
		t.Errorf("the override changed the suite's own recipe: %+v", s.Training)
	}

	s.Models[1].Training.LearningRate = 0.05
	_, err = Run(context.Background(), s, Options{Out: filepath.Join(dir, "refused"), FineTuner: tuner, Zoo: zootest.Random{}})
	if err == nil || !strings.Contains(err.Error(), "model other") || !strings.Contains(err.Error(), "too high") {
		t.Fatalf("an override the fine-tuner refuses: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "refused")); err == nil {
		t.Error("work was done before the override was refused")
	}
}
