package harness

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// TimingsFile and TimingsMarkdownFile are where a run's wall times go in the results folder:
// beside results.json and results.md, never inside them, as times change from run to run and
// the results are deterministic to the last digit.
const (
	TimingsFile         = "timings.json"
	TimingsMarkdownFile = "timings.md"
)

// The kinds of TimedStep, in the order a run first meets them.
const (
	// StepPrepare is a task's curriculum, leakage report, retrieval index and recall@k.
	StepPrepare = "prepare"
	// StepZoo is a model resolved to a folder (zoo models through Options.Zoo) and hashed.
	StepZoo = "zoo"
	// StepFineTune is a task x model x seed fine-tuning, trained or read from the cache (and hashed).
	StepFineTune = "fine-tune"
	// StepLoad is a model, base or fine-tuned, loaded into memory for the cells that follow.
	StepLoad = "load"
	// StepEvaluate is one formulation of one cell evaluated (Formulation names it).
	StepEvaluate = "evaluate"
	// StepCell is a cell's own bookkeeping around its formulations: its key, the cache lookup
	// (the whole read-back of a cached cell), the retriever, the request cache and the written
	// record (samples, cell.json).
	StepCell = "cell"
	// StepReport is part of the outputs: results.json and the samples, the charts, the pages.
	StepReport = "report"
)

// Timings is timings.json: where a Run's wall time went, step by step in run order. The steps
// are consecutive spans of one clock, so they add up to the total (writing the timings files
// themselves, the last thing a run does, is the only time left out).
type Timings struct {
	Suite string `json:"suite"`
	// Started is when the run began, by Options.Now.
	Started time.Time `json:"started"`
	// TotalSeconds is the run's wall time, the sum of the steps' Seconds.
	TotalSeconds float64     `json:"total_seconds"`
	Steps        []TimedStep `json:"steps"`
}

// TimedStep is one step of a run: its kind (the Step constants), what it worked on (the fields
// that apply), whether it was read from the cache, and its wall time.
type TimedStep struct {
	Kind string `json:"kind"`
	// Formulation is the evaluated formulation (StepEvaluate only).
	Formulation string `json:"formulation,omitempty"`
	Task        string `json:"task,omitempty"`
	Model       string `json:"model,omitempty"`
	Condition   string `json:"condition,omitempty"`
	// Seed is the fine-tuning seed (fine-tunings and the fine-tuned conditions' cells).
	Seed int64 `json:"seed,omitempty"`
	// Name says which part of the report a StepReport is.
	Name string `json:"name,omitempty"`
	// Cached is true when the step made nothing: its result was on disk already (a task with
	// no curriculum or index built, a model folder there before it was resolved, a fine-tuned
	// model found, a cell read back, charts already up to date). A cached cell's formulations
	// take no time of their own: reading the cell back is its StepCell.
	Cached bool `json:"cached,omitempty"`
	// Lane is the lane that ran the step when a run evaluated its models side by side
	// (Options.Jobs > 1), numbered from 1; 0 for the steps of a run with one lane and for the
	// steps before and after the cells.
	Lane    int     `json:"lane,omitempty"`
	Seconds float64 `json:"seconds"`
	// began orders the steps of concurrent lanes into one run order.
	began time.Duration
}

// Lanes is the number of lanes the run's cells ran in (1 for a run with one lane).
func (t *Timings) Lanes() int {
	n := 1
	for _, s := range t.Steps {
		n = max(n, s.Lane)
	}
	return n
}

// Group is the step's line in the share table: its kind, and for an evaluation its formulation
// ("evaluate cloze"), as the formulations differ in cost (recall generates).
func (s TimedStep) Group() string {
	if s.Formulation != "" {
		return s.Kind + " " + s.Formulation
	}
	return s.Kind
}

// What names what the step worked on: "products / gemma-tiny / finetuned+rag (seed 1)".
func (s TimedStep) What() string {
	var parts []string
	for _, p := range []string{s.Task, s.Model} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	switch {
	case s.Condition != "":
		parts = append(parts, s.Condition+seedSuffix(s.Seed))
	case s.Seed != 0:
		parts = append(parts, fmt.Sprintf("seed %d", s.Seed))
	}
	if s.Name != "" {
		parts = append(parts, s.Name)
	}
	return strings.Join(parts, " / ")
}

// stopwatch splits a run's wall time into consecutive steps, so the steps add up to the total by
// construction: each interval between two readings of the clock is given to exactly one step.
// Lanes that run at once each have a stopwatch of their own (fork), merged back by join: their
// steps overlap, so then the steps add up to more than the total.
type stopwatch struct {
	now         func() time.Time
	start, last time.Time
	// lane is recorded in every step (0: the run's own stopwatch).
	lane int
	// aside holds intervals kept for a step that ends later: a cell's bookkeeping happens before,
	// between and after its loads and formulations, which are steps of their own.
	aside time.Duration
	steps []TimedStep
}

// newStopwatch starts a stopwatch on the clock now.
func newStopwatch(now func() time.Time) *stopwatch {
	t := now()
	return &stopwatch{now: now, start: t, last: t}
}

// interval is the time since the previous reading, and starts the next interval.
func (w *stopwatch) interval() time.Duration {
	t := w.now()
	d := t.Sub(w.last)
	w.last = t
	return d
}

// lap ends step s now: it took the time since the previous reading.
func (w *stopwatch) lap(s TimedStep) { w.add(s, w.interval()) }

// setAside keeps the time since the previous reading for the step that lapAside ends.
func (w *stopwatch) setAside() { w.aside += w.interval() }

// lapAside ends step s now: it took the time set aside plus the time since the previous reading.
func (w *stopwatch) lapAside(s TimedStep) {
	d := w.aside + w.interval()
	w.aside = 0
	w.add(s, d)
}

// skip records a step that took no time of its own (a cached cell's formulation).
func (w *stopwatch) skip(s TimedStep) { w.add(s, 0) }

func (w *stopwatch) add(s TimedStep, d time.Duration) {
	s.Seconds = d.Seconds()
	s.Lane = w.lane
	s.began = w.last.Sub(w.start) - d
	w.steps = append(w.steps, s)
}

// fork is a stopwatch for a lane that starts now, at w's last reading: the lane's first step
// takes the time since then, as it would in a run with one lane.
func (w *stopwatch) fork(lane int) *stopwatch {
	return &stopwatch{now: w.now, start: w.start, last: w.last, lane: lane}
}

// join takes back the lanes' steps, in the order they began (lane order for a tie), and
// continues from the last lane's end.
func (w *stopwatch) join(lanes []*stopwatch) {
	var steps []TimedStep
	for _, l := range lanes {
		steps = append(steps, l.steps...)
		if l.last.After(w.last) {
			w.last = l.last
		}
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].began < steps[j].began })
	w.steps = append(w.steps, steps...)
}

// timings is the run so far as timings.json.
func (w *stopwatch) timings(suite string) *Timings {
	return &Timings{Suite: suite, Started: w.start, TotalSeconds: w.last.Sub(w.start).Seconds(), Steps: w.steps}
}

// writeTimings writes timings.json and timings.md into the results folder, atomically like the
// other outputs.
func (r *runner) writeTimings(t *Timings) error {
	if err := writeJSON(filepath.Join(r.opt.Out, TimingsFile), t); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(r.opt.Out, TimingsMarkdownFile), []byte(TimingsMarkdown(t)))
}

// TimingsMarkdown renders timings.md: every step in run order with the total, then the share of
// the total by kind of step (evaluations by formulation), kinds in the order the run met them.
func TimingsMarkdown(t *Timings) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Timings: suite %s\n\n", t.Suite)
	fmt.Fprintf(&b, "Wall time of each step of the run started %s, in run order (timings.json holds the same). "+
		"A cached step read its result back instead of making it; a cached cell's formulations take no time of "+
		"their own, its cell step is the read-back. Times change from run to run, so they are kept out of "+
		"results.json and results.md.\n\n", t.Started.Format(time.RFC3339))
	if lanes := t.Lanes(); lanes > 1 {
		fmt.Fprintf(&b, "The models were evaluated in %d lanes side by side (the Lane column): steps of different lanes "+
			"overlap, so the steps add up to more than the wall time and the shares to more than 100%%.\n\n", lanes)
		b.WriteString("| # | Step | What | Lane | Cached | Time |\n|---|---|---|---|---|---|\n")
	} else {
		b.WriteString("| # | Step | What | Cached | Time |\n|---|---|---|---|---|\n")
	}
	type group struct {
		name    string
		steps   int
		seconds float64
	}
	var groups []*group
	byName := map[string]*group{}
	for i, s := range t.Steps {
		cached := ""
		if s.Cached {
			cached = "yes"
		}
		if t.Lanes() > 1 {
			lane := ""
			if s.Lane > 0 {
				lane = fmt.Sprint(s.Lane)
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", i+1, s.Group(), s.What(), lane, cached, formatSeconds(s.Seconds))
		} else {
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", i+1, s.Group(), s.What(), cached, formatSeconds(s.Seconds))
		}
		g := byName[s.Group()]
		if g == nil {
			g = &group{name: s.Group()}
			byName[g.name] = g
			groups = append(groups, g)
		}
		g.steps++
		g.seconds += s.Seconds
	}
	if t.Lanes() > 1 {
		fmt.Fprintf(&b, "| | **total** (wall) | | | | **%s** |\n", formatSeconds(t.TotalSeconds))
	} else {
		fmt.Fprintf(&b, "| | **total** | | | **%s** |\n", formatSeconds(t.TotalSeconds))
	}
	b.WriteString("\n## Share of the total by kind of step\n\n| Step | Steps | Time | Share |\n|---|---|---|---|\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", g.name, g.steps, formatSeconds(g.seconds), share(g.seconds, t.TotalSeconds))
	}
	fmt.Fprintf(&b, "| **total** | %d | **%s** | %s |\n", len(t.Steps), formatSeconds(t.TotalSeconds), share(t.TotalSeconds, t.TotalSeconds))
	return b.String()
}

// formatSeconds writes a wall time to the hundredth of a second, with minutes past one minute
// ("19 min 5.25 s"), as the docs quote them.
func formatSeconds(s float64) string {
	cs := math.Round(s * 100) // rounded first, so 59.999 s reads "1 min 0.00 s", not "60.00 s"
	if cs < 6000 {
		return fmt.Sprintf("%.2f s", cs/100)
	}
	m := math.Floor(cs / 6000)
	return fmt.Sprintf("%.0f min %.2f s", m, (cs-m*6000)/100)
}

// share is part of total as a percentage ("–" for a run that took no time by its clock).
func share(part, total float64) string {
	if total <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*part/total)
}
