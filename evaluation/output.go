package evaluation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/perpetual-ml/perpetual/evaluation/stats"

	"github.com/perpetual-ml/perpetual/internal/atomicfile"
)

func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // prompts contain <, >, & (code); keep them readable
	return enc
}

// Score is an accuracy with its harness standard error and Wilson 95% interval. For the recall
// formulation Acc (and AccNorm) is the exact-match rate and Contains the containment rate.
type Score struct {
	N       int        `json:"n"`
	Acc     float64    `json:"acc"`
	Stderr  float64    `json:"acc_stderr"`
	Wilson  [2]float64 `json:"acc_wilson95"`
	AccNorm float64    `json:"acc_norm"`
	// NormStderr is the standard error of acc_norm.
	NormStderr float64    `json:"acc_norm_stderr"`
	NormWilson [2]float64 `json:"acc_norm_wilson95"`
	// Contains is the share of recall answers containing the gold answer (recall only).
	Contains *Rate `json:"contains,omitempty"`
}

// Rate is the mean of a 0/1 score with its harness standard error and Wilson 95% interval.
type Rate struct {
	Mean   float64    `json:"mean"`
	Stderr float64    `json:"stderr"`
	Wilson [2]float64 `json:"wilson95"`
}

func newRate(xs []float64) Rate {
	k := 0
	for _, x := range xs {
		k += int(x)
	}
	r := Rate{Mean: stats.Mean(xs), Stderr: nanToZero(stats.StdErr(xs))}
	r.Wilson[0], r.Wilson[1] = stats.Wilson(k, len(xs), stats.Z95)
	return r
}

func newScore(samples []Sample) Score {
	s := Score{N: len(samples)}
	acc := make([]float64, len(samples))
	norm := make([]float64, len(samples))
	var contains []float64
	for i, x := range samples {
		acc[i], norm[i] = x.Acc, x.AccNorm
		if x.Recall != nil {
			contains = append(contains, x.Recall.Contains)
		}
	}
	a, n := newRate(acc), newRate(norm)
	s.Acc, s.Stderr, s.Wilson = a.Mean, a.Stderr, a.Wilson
	s.AccNorm, s.NormStderr, s.NormWilson = n.Mean, n.Stderr, n.Wilson
	if contains != nil {
		c := newRate(contains)
		s.Contains = &c
	}
	return s
}

// nanToZero keeps JSON valid for single-question runs (encoding/json rejects NaN); the harness
// reports "N/A" there.
func nanToZero(x float64) float64 {
	if x != x {
		return 0
	}
	return x
}

// Retrieval summarises RAG over a run.
type Retrieval struct {
	K int `json:"k"`
	// QuestionsWithCut counts questions that lost at least one passage to the window.
	QuestionsWithCut int `json:"questions_with_cut"`
	// PassagesCut is the total number of passages dropped.
	PassagesCut int `json:"passages_cut"`
	// RecallAtK is the share of questions with a known source chunk whose chunk was retrieved
	// and kept in the prompt; RecallN is how many questions had a known chunk.
	RecallAtK float64 `json:"recall_at_k"`
	RecallN   int     `json:"recall_n"`
}

// Extras are Perpetual's additions to the harness's results for one task.
type Extras struct {
	Formulation string           `json:"formulation"`
	Overall     Score            `json:"overall"`
	ByKind      map[string]Score `json:"by_kind"`
	// Baselines are the multiple-choice baselines (absent for recall, which has no options).
	Baselines stats.Baselines `json:"baselines,omitzero"`
	// GoldGreedy is the share of questions whose gold continuation is the greedy decoding (for
	// recall: whose generated answer is an exact match).
	GoldGreedy float64 `json:"gold_is_greedy"`
	// Stopped counts how recall answers ended: "eos", "until", "length" (recall only).
	Stopped map[string]int `json:"stopped,omitempty"`
	// QuestionsTruncated counts questions whose prompt lost tokens to left truncation.
	QuestionsTruncated int        `json:"questions_truncated"`
	Requests           int        `json:"requests"`
	CachedRequests     int        `json:"cached_requests"`
	Retrieval          *Retrieval `json:"retrieval,omitempty"`
}

// Results is results.json: the harness's top-level fields, plus "perpetual" with our extras.
type Results struct {
	Results   map[string]map[string]any `json:"results"`
	Configs   map[string]*Task          `json:"configs"`
	Versions  map[string]int            `json:"versions"`
	NSamples  map[string]map[string]int `json:"n-samples"`
	Config    map[string]any            `json:"config"`
	Perpetual map[string]Extras         `json:"perpetual"`
}

// Results summarises the run in the harness's shape.
func (r *Run) Results(originalN int) (*Results, error) {
	name := r.Task.Name
	all := newScore(r.Samples)
	bytesAcc := make([]float64, len(r.Samples))
	gold := make([]int, len(r.Samples))
	nch := make([]int, len(r.Samples))
	byKind := map[string][]Sample{}
	ex := Extras{Formulation: r.Task.Formulation, Overall: all, ByKind: map[string]Score{},
		Requests: r.Requests, CachedRequests: r.Cached}
	greedy := 0
	generates := r.Task.Generates()
	if generates {
		ex.Stopped = map[string]int{}
	}
	for i, s := range r.Samples {
		bytesAcc[i] = s.AccBytes
		gold[i], nch[i] = s.Gold, len(s.Choices)
		byKind[s.Kind] = append(byKind[s.Kind], s)
		switch {
		case generates:
			ex.Stopped[s.Recall.Stopped]++
			if s.Acc == 1 {
				greedy++
			}
		case s.IsGreedy[s.Gold]:
			greedy++
		}
		if s.TruncatedTokens > 0 {
			ex.QuestionsTruncated++
		}
	}
	for k, ss := range byKind {
		ex.ByKind[k] = newScore(ss)
	}
	if !generates {
		var err error
		if ex.Baselines, err = stats.ComputeBaselines(gold, nch); err != nil {
			return nil, err
		}
	}
	if len(r.Samples) > 0 {
		ex.GoldGreedy = float64(greedy) / float64(len(r.Samples))
	}
	if r.Options.Retriever != nil {
		rt := &Retrieval{K: r.Options.K}
		hits := 0
		for _, s := range r.Samples {
			rt.PassagesCut += s.PassagesCut
			if s.PassagesCut > 0 {
				rt.QuestionsWithCut++
			}
			if s.ChunkRecalled != nil {
				rt.RecallN++
				if *s.ChunkRecalled {
					hits++
				}
			}
		}
		if rt.RecallN > 0 {
			rt.RecallAtK = float64(hits) / float64(rt.RecallN)
		}
		ex.Retrieval = rt
	}
	metrics := map[string]any{
		"alias":                 name,
		"acc,none":              all.Acc,
		"acc_stderr,none":       all.Stderr,
		"acc_norm,none":         all.AccNorm,
		"acc_norm_stderr,none":  all.NormStderr,
		"acc_bytes,none":        stats.Mean(bytesAcc),
		"acc_bytes_stderr,none": nanToZero(stats.StdErr(bytesAcc)),
	}
	if generates {
		// A generate_until task's metrics, named as lm-evaluation-harness's exact_match.
		metrics = map[string]any{"alias": name, "exact_match,none": all.Acc, "exact_match_stderr,none": all.Stderr}
		if all.Contains != nil {
			metrics["contains,none"], metrics["contains_stderr,none"] = all.Contains.Mean, all.Contains.Stderr
		}
	}
	res := &Results{
		Results:  map[string]map[string]any{name: metrics},
		Configs:  map[string]*Task{name: r.Task},
		Versions: map[string]int{name: 1},
		NSamples: map[string]map[string]int{name: {"original": originalN, "effective": len(r.Samples)}},
		Config: map[string]any{
			"model": r.Options.Model, "model_hash": r.Options.ModelKey, "batch_size": r.Options.BatchSize,
			"limit": r.Options.Limit, "max_length": r.Options.Encoder.MaxLength, "add_bos_token": r.Options.Encoder.AddBOS,
		},
		Perpetual: map[string]Extras{name: ex},
	}
	if src := r.Options.Encoder.MaxLengthSource; src != "" {
		res.Config["max_length_source"] = src
	}
	return res, nil
}

// WriteFiles writes <dir>/results.json and <dir>/samples_<task>.jsonl, each atomically.
func (r *Run) WriteFiles(dir string, originalN int) error { return WriteRuns(dir, originalN, r) }

// MergeResults combines the results of runs of different tasks (e.g. both formulations) into
// one results.json, as the harness does for a multi-task invocation.
func MergeResults(originalN int, runs ...*Run) (*Results, error) {
	var all *Results
	for _, r := range runs {
		res, err := r.Results(originalN)
		if err != nil {
			return nil, err
		}
		if all == nil {
			all = res
			continue
		}
		name := r.Task.Name
		if _, dup := all.Results[name]; dup {
			return nil, fmt.Errorf("evaluation output: task %q appears twice", name)
		}
		all.Results[name] = res.Results[name]
		all.Configs[name] = res.Configs[name]
		all.Versions[name] = res.Versions[name]
		all.NSamples[name] = res.NSamples[name]
		all.Perpetual[name] = res.Perpetual[name]
	}
	if all == nil {
		return nil, fmt.Errorf("evaluation output: no runs")
	}
	return all, nil
}

// WriteRuns writes one results.json for all runs and a samples_<task>.jsonl per run, each file
// atomically (temporary file, fsync, rename).
func WriteRuns(dir string, originalN int, runs ...*Run) error {
	res, err := MergeResults(originalN, runs...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("evaluation output: %w", err)
	}
	var buf bytes.Buffer
	enc := newJSONEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		return fmt.Errorf("evaluation output: results.json: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "results.json"), buf.Bytes()); err != nil {
		return err
	}
	for _, r := range runs {
		buf.Reset()
		enc = newJSONEncoder(&buf)
		for _, s := range r.Samples {
			if err := enc.Encode(s); err != nil {
				return fmt.Errorf("evaluation output: sample %d: %w", s.DocID, err)
			}
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, SamplesFile(r.Task.Name)), buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// SamplesFile is the per-sample log's file name for a task.
func SamplesFile(task string) string { return "samples_" + task + ".jsonl" }

// ReadSamples reads a samples JSONL written by WriteFiles (e.g. a base run to compare against).
func ReadSamples(path string) ([]Sample, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading samples: %w", err)
	}
	var out []Sample
	dec := json.NewDecoder(bytes.NewReader(data))
	for line := 1; dec.More(); line++ {
		var s Sample
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", path, line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Comparison is a paired test of a condition against its base on the same questions (on acc,
// or on the metric CompareMetric was given: BaseAcc and Acc are then that metric's means).
type Comparison struct {
	N         int                   `json:"n"`
	BaseAcc   float64               `json:"base_acc"`
	Acc       float64               `json:"acc"`
	McNemar   stats.McNemarResult   `json:"mcnemar"`
	Bootstrap stats.BootstrapResult `json:"bootstrap"`
}

// Scores a formulation reports, the first being its accuracy (Sample.Acc).
const (
	// MetricAcc is the accuracy of letters and cloze.
	MetricAcc = "acc"
	// MetricExactMatch is recall's normalised exact match (Sample.Acc of a recall sample).
	MetricExactMatch = "exact_match"
	// MetricContains is recall's containment of the normalised gold answer.
	MetricContains = "contains"
)

// Metrics lists the scores of a formulation, its accuracy (Sample.Acc) first.
func Metrics(formulation string) []string {
	if formulation == Recall {
		return []string{MetricExactMatch, MetricContains}
	}
	return []string{MetricAcc}
}

// MetricValue is a sample's score by metric name (MetricAcc and MetricExactMatch are Sample.Acc).
func MetricValue(s Sample, metric string) (float64, error) {
	switch metric {
	case MetricAcc, MetricExactMatch:
		return s.Acc, nil
	case MetricContains:
		if s.Recall == nil {
			return 0, fmt.Errorf("question %q has no generated answer: %s is a recall score", s.Doc.ID, metric)
		}
		return s.Recall.Contains, nil
	}
	return 0, fmt.Errorf("unknown metric %q (known: %s, %s, %s)", metric, MetricAcc, MetricExactMatch, MetricContains)
}

// Compare pairs samples by question id and tests the difference in acc (condition - base) on
// the condition's questions, each of which must be in the base run (a base run may cover more,
// e.g. when the condition used --limit).
func Compare(base, cond []Sample, iterations int, seed uint64) (Comparison, error) {
	return CompareMetric(base, cond, MetricAcc, iterations, seed)
}

// CompareMetric is Compare on one of Metrics' scores (recall's contains, say).
func CompareMetric(base, cond []Sample, metric string, iterations int, seed uint64) (Comparison, error) {
	byID := map[string]Sample{}
	for _, s := range base {
		byID[s.Doc.ID] = s
	}
	ids := make([]string, 0, len(cond))
	condByID := map[string]Sample{}
	for _, s := range cond {
		if _, ok := byID[s.Doc.ID]; !ok {
			return Comparison{}, fmt.Errorf("compare: question %q is not in the base run", s.Doc.ID)
		}
		condByID[s.Doc.ID] = s
		ids = append(ids, s.Doc.ID)
	}
	sort.Strings(ids)
	a := make([]bool, len(ids))
	b := make([]bool, len(ids))
	c := Comparison{N: len(ids)}
	for i, id := range ids {
		x, err := MetricValue(byID[id], metric)
		if err != nil {
			return Comparison{}, fmt.Errorf("compare: base: %w", err)
		}
		y, err := MetricValue(condByID[id], metric)
		if err != nil {
			return Comparison{}, fmt.Errorf("compare: %w", err)
		}
		a[i], b[i] = x == 1, y == 1
		c.BaseAcc += x
		c.Acc += y
	}
	if c.N > 0 {
		c.BaseAcc /= float64(c.N)
		c.Acc /= float64(c.N)
	}
	var err error
	if c.McNemar, err = stats.McNemar(a, b); err != nil {
		return Comparison{}, err
	}
	if c.Bootstrap, err = stats.PairedBootstrap(a, b, iterations, seed); err != nil {
		return Comparison{}, err
	}
	return c, nil
}
