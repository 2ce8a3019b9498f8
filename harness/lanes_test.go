package harness

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// TestRunLanesMatchOneLane runs miniSuite (a zoo Gemma and a Mamba folder) with one lane, then
// from scratch in the same folder with two: results.json and results.md are byte for byte the
// same, the report counts the same work, and timings.json puts each unit's steps (a task and a
// model) in one lane, the two units in two lanes.
func TestRunLanesMatchOneLane(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other-model")
	if err := zoo.RandomModel(other, zootest.TinyMamba, 7); err != nil {
		t.Fatal(err)
	}
	s, err := Parse([]byte(miniSuite), "mini.yaml", dir, map[string]string{"OTHER_MODEL": other})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "results")
	run := func(jobs int) (*Report, map[string][]byte) {
		t.Helper()
		if err := os.RemoveAll(out); err != nil {
			t.Fatal(err)
		}
		clock := &fakeClock{t: time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC), tick: time.Millisecond}
		rep, err := Run(context.Background(), s, Options{Out: out, FineTuner: &scaleTuner{}, Zoo: zootest.Random{}, Now: clock.Now, Jobs: jobs})
		if err != nil {
			t.Fatalf("jobs %d: %v", jobs, err)
		}
		files := map[string][]byte{}
		for _, f := range []string{"results.json", "results.md"} {
			if files[f], err = os.ReadFile(filepath.Join(out, f)); err != nil {
				t.Fatal(err)
			}
		}
		return rep, files
	}
	one, oneFiles := run(1)
	two, twoFiles := run(2)
	for f, b := range oneFiles {
		if !bytes.Equal(b, twoFiles[f]) {
			t.Errorf("%s differs between one lane and two", f)
		}
	}
	if one.CellsEvaluated != 12 || one.FineTuned != 4 || two.CellsEvaluated != one.CellsEvaluated || two.FineTuned != one.FineTuned ||
		two.CellsCached != one.CellsCached {
		t.Errorf("work done: one lane %+v, two lanes %+v", one, two)
	}
	if n := one.Timings.Lanes(); n != 1 {
		t.Errorf("one lane recorded %d lanes", n)
	}
	tm := two.Timings
	if tm.Lanes() != 2 {
		t.Fatalf("two lanes recorded %d lanes", tm.Lanes())
	}
	laneOf := map[string]int{} // a unit (task and model) runs in one lane
	lanes := map[int]bool{}
	for i, st := range tm.Steps {
		if st.Kind == StepPrepare || st.Kind == StepZoo || st.Kind == StepReport {
			if st.Lane != 0 {
				t.Errorf("step %d (%s) ran in lane %d, want the run's own", i, st.What(), st.Lane)
			}
			continue
		}
		unit := st.Task + "/" + st.Model
		if l, ok := laneOf[unit]; ok && l != st.Lane || st.Lane < 1 || st.Lane > 2 {
			t.Errorf("step %d (%s) ran in lane %d, its unit in lane %d", i, st.What(), st.Lane, l)
		}
		laneOf[unit] = st.Lane
		lanes[st.Lane] = true
	}
	if len(laneOf) != 2 || len(lanes) != 2 {
		t.Errorf("units %v ran in lanes %v, want two units in two lanes", laneOf, lanes)
	}
	if len(tm.Steps) != len(one.Timings.Steps) {
		t.Errorf("two lanes timed %d steps, one lane %d", len(tm.Steps), len(one.Timings.Steps))
	}
	md, err := os.ReadFile(filepath.Join(out, TimingsMarkdownFile))
	if err != nil || !strings.Contains(string(md), "in 2 lanes side by side") || !strings.Contains(string(md), "| Lane |") {
		t.Errorf("timings.md does not say the lanes overlap (%v):\n%s", err, md)
	}
}

// TestRunRefusesNegativeJobs: a negative lane count is refused before any work.
func TestRunRefusesNegativeJobs(t *testing.T) {
	dir := t.TempDir()
	s, err := Parse([]byte(miniSuite), "mini.yaml", dir, map[string]string{"OTHER_MODEL": dir})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "results")
	_, err = Run(context.Background(), s, Options{Out: out, FineTuner: &scaleTuner{}, Zoo: zootest.Random{}, Jobs: -1})
	if err == nil || !strings.Contains(err.Error(), "jobs") {
		t.Fatalf("jobs -1: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused run left %s behind (%v)", out, err)
	}
}

// TestUnitsSplitThePlan: a unit is a task and model's run of cells, base first, in plan order.
func TestUnitsSplitThePlan(t *testing.T) {
	ta, tb := &preparedTask{}, &preparedTask{}
	ma, mb := &preparedModel{}, &preparedModel{}
	plan := []cellPlan{{task: ta, model: ma, cond: "base"}, {task: ta, model: ma, cond: "rag"}, {task: ta, model: mb, cond: "base"},
		{task: tb, model: ma, cond: "base"}, {task: tb, model: ma, cond: "finetuned", seed: 1}, {task: tb, model: mb, cond: "base"}}
	got := units(plan)
	want := [][]int{{0, 1}, {2}, {3, 4}, {5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("units %v, want %v", got, want)
	}
	if len(units(nil)) != 0 {
		t.Error("an empty plan has units")
	}
}
