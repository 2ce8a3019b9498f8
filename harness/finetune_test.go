package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/harness/results"
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
