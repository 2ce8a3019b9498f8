package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// fakeClock is Options.Now for tests: each reading returns the time and moves it on by tick, so
// every step takes a whole number of ticks, and Advance stands for slow work.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	tick time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.tick)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// slowTuner is scaleTuner taking exactly a minute of the fake clock per fine-tuning.
type slowTuner struct {
	scaleTuner
	clock *fakeClock
}

func (s *slowTuner) FineTune(ctx context.Context, req FineTuneRequest) (*FineTuneResult, error) {
	s.clock.Advance(time.Minute)
	return s.scaleTuner.FineTune(ctx, req)
}

// timedSuite is a small suite for the timings: one task, one zoo model, every condition, two
// formulations, two seeds: 6 cells, 2 fine-tunings.
const timedSuite = `
name: timed
tasks:
  - name: products
    synthetic: {kind: products, seed: 3, chunks: 6, facts_per_chunk: 2}
    rag: {k: 1}
models:
  - name: gemma-tiny
    path: zoo:gemma-tiny
formulations: [letters, cloze]
training: {epochs: 2, lr: 0.001}
seeds: [1, 2]
eval: {batch_size: 16, bootstrap: 200, limit: 4}
`

// millis is a step's seconds in whole milliseconds (the fake clock's tick), so sums are exact.
func millis(s float64) int64 { return int64(math.Round(s * 1000)) }

// stepID names a step by what it worked on, for the coverage checks.
func stepID(s TimedStep) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%d", s.Kind, s.Formulation, s.Task, s.Model, s.Condition, s.Seed)
}

// readTimings reads out/timings.json, checks it is the run's report and timings.md its
// rendering, that the steps add up to the total and that the run starts with the preparations
// and ends with the report.
func readTimings(t *testing.T, out string, rep *Report) *Timings {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, TimingsFile))
	if err != nil {
		t.Fatal(err)
	}
	var tm Timings
	if err := json.Unmarshal(raw, &tm); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(rep.Timings)
	got, _ := json.Marshal(&tm)
	if !bytes.Equal(got, want) {
		t.Errorf("timings.json is not the run's timings:\n%s\nwant\n%s", got, want)
	}
	md, err := os.ReadFile(filepath.Join(out, TimingsMarkdownFile))
	if err != nil || string(md) != TimingsMarkdown(&tm) {
		t.Errorf("timings.md is not the rendering of timings.json (%v)", err)
	}
	var sum int64
	for _, s := range tm.Steps {
		sum += millis(s.Seconds)
	}
	if sum != millis(tm.TotalSeconds) || sum == 0 {
		t.Errorf("steps add up to %d ms, total %d ms", sum, millis(tm.TotalSeconds))
	}
	n := len(tm.Steps)
	if n < 5 || tm.Steps[0].Kind != StepPrepare || tm.Steps[1].Kind != StepZoo || tm.Steps[n-1].Kind != StepReport ||
		tm.Steps[n-2].Kind != StepReport || tm.Steps[n-3].Kind != StepReport {
		t.Errorf("steps out of run order: %+v", tm.Steps)
	}
	return &tm
}

// TestRunWritesTimings runs a small suite twice on a fake clock: the first run times every cell
// x formulation and every fine-tuning (a minute each, exactly), the second reads them all back
// and says so, the steps add up to the total both times, and results.json and results.md are
// byte for byte the same although the times differ.
func TestRunWritesTimings(t *testing.T) {
	dir := t.TempDir()
	s, err := Parse([]byte(timedSuite), "timed.yaml", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 12, 7, 13, 17, 0, 0, time.UTC), tick: time.Millisecond}
	tuner := &slowTuner{clock: clock}
	out := filepath.Join(dir, "results")
	opt := Options{Out: out, FineTuner: tuner, Charts: true, Zoo: zootest.Random{}, Now: clock.Now}
	rep, err := Run(context.Background(), s, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CellsEvaluated != 6 || rep.FineTuned != 2 {
		t.Fatalf("first run: %+v", rep)
	}
	tm := readTimings(t, out, rep)
	if !tm.Started.Equal(time.Date(2026, 12, 7, 13, 17, 0, 0, time.UTC)) || tm.Suite != "timed" {
		t.Errorf("timings of suite %q started %v", tm.Suite, tm.Started)
	}
	steps := map[string]TimedStep{}
	kinds := map[string]int{}
	for _, st := range tm.Steps {
		if _, dup := steps[stepID(st)]; dup && st.Kind != StepReport {
			t.Errorf("step timed twice: %+v", st)
		}
		steps[stepID(st)] = st
		kinds[st.Kind]++
		if st.Cached {
			t.Errorf("first run, cached step: %+v", st)
		}
	}
	// Every cell x formulation, evaluated.
	for _, rec := range rep.Results.Records {
		for _, f := range s.Formulations {
			id := stepID(TimedStep{Kind: StepEvaluate, Formulation: f, Task: rec.Task, Model: rec.Model, Condition: rec.Condition, Seed: rec.Seed})
			if _, ok := steps[id]; !ok {
				t.Errorf("no step for %s", id)
			}
		}
	}
	// Every fine-tuning, its minute exactly: one tick of the clock beside the fake training.
	for _, seed := range s.Seeds {
		st, ok := steps[stepID(TimedStep{Kind: StepFineTune, Task: "products", Model: "gemma-tiny", Seed: seed})]
		if !ok || millis(st.Seconds) != 60_001 {
			t.Errorf("fine-tuning seed %d: %+v (found %v)", seed, st, ok)
		}
	}
	// The base model, then each fine-tuned one, loaded once.
	if kinds[StepEvaluate] != 6*2 || kinds[StepCell] != 6 || kinds[StepFineTune] != 2 || kinds[StepLoad] != 3 ||
		kinds[StepPrepare] != 1 || kinds[StepZoo] != 1 || kinds[StepReport] != 3 {
		t.Errorf("steps by kind: %v", kinds)
	}
	resultsJSON, _ := os.ReadFile(filepath.Join(out, "results.json"))
	resultsMD, _ := os.ReadFile(filepath.Join(out, "results.md"))

	// Again over the same cache, later and on a slower clock: everything is read back.
	clock2 := &fakeClock{t: time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC), tick: 3 * time.Millisecond}
	opt.Now = clock2.Now
	rep, err = Run(context.Background(), s, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CellsCached != 6 || rep.FineTuned != 0 {
		t.Fatalf("second run: %+v", rep)
	}
	tm = readTimings(t, out, rep)
	evaluated := 0
	for _, st := range tm.Steps {
		switch {
		case st.Kind == StepLoad:
			t.Errorf("second run loaded a model: %+v", st)
		case !st.Cached && (st.Kind != StepReport || st.Name == "charts"): // results and pages are always written
			t.Errorf("second run, step not cached: %+v", st)
		case st.Kind == StepEvaluate && st.Seconds != 0:
			t.Errorf("cached formulation with a time of its own: %+v", st)
		case st.Kind == StepFineTune && st.Seconds >= 60:
			t.Errorf("cached fine-tuning took its training time: %+v", st)
		}
		if st.Kind == StepEvaluate {
			evaluated++
		}
	}
	if evaluated != 6*2 {
		t.Errorf("second run: %d cell x formulation steps, want 12", evaluated)
	}
	// The results are deterministic: the times are in timings.json only.
	if again, _ := os.ReadFile(filepath.Join(out, "results.json")); !bytes.Equal(again, resultsJSON) || len(again) == 0 {
		t.Error("results.json changed between the runs")
	}
	if again, _ := os.ReadFile(filepath.Join(out, "results.md")); !bytes.Equal(again, resultsMD) || len(again) == 0 {
		t.Error("results.md changed between the runs")
	}
}

// TestTimingsMarkdown pins timings.md: the steps in run order with what they worked on, the
// total, and the share of the total by kind of step, evaluations by formulation.
func TestTimingsMarkdown(t *testing.T) {
	tm := &Timings{Suite: "mini", Started: time.Date(2026, 12, 7, 13, 17, 0, 0, time.UTC), TotalSeconds: 200, Steps: []TimedStep{
		{Kind: StepPrepare, Task: "products", Seconds: 2},
		{Kind: StepZoo, Model: "gemma-tiny", Cached: true, Seconds: 1},
		{Kind: StepFineTune, Task: "products", Model: "gemma-tiny", Seed: 1, Seconds: 90.5},
		{Kind: StepLoad, Task: "products", Model: "gemma-tiny", Condition: "finetuned", Seed: 1, Seconds: 1.5},
		{Kind: StepEvaluate, Formulation: "letters", Task: "products", Model: "gemma-tiny", Condition: "finetuned", Seed: 1, Seconds: 40},
		{Kind: StepEvaluate, Formulation: "recall", Task: "products", Model: "gemma-tiny", Condition: "finetuned", Seed: 1, Seconds: 50},
		{Kind: StepCell, Task: "products", Model: "gemma-tiny", Condition: "finetuned", Seed: 1, Seconds: 1},
		{Kind: StepEvaluate, Formulation: "letters", Task: "products", Model: "gemma-tiny", Condition: "rag", Cached: true},
		{Kind: StepCell, Task: "products", Model: "gemma-tiny", Condition: "rag", Cached: true, Seconds: 4},
		{Kind: StepReport, Name: "charts", Seconds: 10},
	}}
	want := "# Timings: suite mini\n\n" +
		"Wall time of each step of the run started 2026-12-07T13:17:00Z, in run order (timings.json holds the same). " +
		"A cached step read its result back instead of making it; a cached cell's formulations take no time of their own, " +
		"its cell step is the read-back. Times change from run to run, so they are kept out of results.json and results.md.\n\n" +
		"| # | Step | What | Cached | Time |\n|---|---|---|---|---|\n" +
		"| 1 | prepare | products |  | 2.00 s |\n" +
		"| 2 | zoo | gemma-tiny | yes | 1.00 s |\n" +
		"| 3 | fine-tune | products / gemma-tiny / seed 1 |  | 1 min 30.50 s |\n" +
		"| 4 | load | products / gemma-tiny / finetuned (seed 1) |  | 1.50 s |\n" +
		"| 5 | evaluate letters | products / gemma-tiny / finetuned (seed 1) |  | 40.00 s |\n" +
		"| 6 | evaluate recall | products / gemma-tiny / finetuned (seed 1) |  | 50.00 s |\n" +
		"| 7 | cell | products / gemma-tiny / finetuned (seed 1) |  | 1.00 s |\n" +
		"| 8 | evaluate letters | products / gemma-tiny / rag | yes | 0.00 s |\n" +
		"| 9 | cell | products / gemma-tiny / rag | yes | 4.00 s |\n" +
		"| 10 | report | charts |  | 10.00 s |\n" +
		"| | **total** | | | **3 min 20.00 s** |\n\n" +
		"## Share of the total by kind of step\n\n| Step | Steps | Time | Share |\n|---|---|---|---|\n" +
		"| prepare | 1 | 2.00 s | 1.0% |\n" +
		"| zoo | 1 | 1.00 s | 0.5% |\n" +
		"| fine-tune | 1 | 1 min 30.50 s | 45.2% |\n" +
		"| load | 1 | 1.50 s | 0.8% |\n" +
		"| evaluate letters | 2 | 40.00 s | 20.0% |\n" +
		"| evaluate recall | 1 | 50.00 s | 25.0% |\n" +
		"| cell | 2 | 5.00 s | 2.5% |\n" +
		"| report | 1 | 10.00 s | 5.0% |\n" +
		"| **total** | 10 | **3 min 20.00 s** | 100.0% |\n"
	if got := TimingsMarkdown(tm); got != want {
		t.Errorf("timings.md:\n%s\nwant\n%s", got, want)
	}
	if got := formatSeconds(59.999); got != "1 min 0.00 s" {
		t.Errorf("59.999 s reads %q", got)
	}
	if got := TimingsMarkdown(&Timings{Suite: "empty"}); !bytes.Contains([]byte(got), []byte("| **total** | 0 | **0.00 s** | – |")) {
		t.Errorf("a run of no time:\n%s", got)
	}
}
