package harness

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/perpetual-ml/perpetual/evaluation"
)

// compareWithBase tests each metric of formulation f of a cell against the base cell on the same
// questions (evaluation.CompareMetric: McNemar's exact test and a paired bootstrap), on all
// questions and per kind: the first metric into fr.VsBase, recall's contains into
// fr.ContainsVsBase.
func (r *runner) compareWithBase(c cellPlan, f string, fr *FormulationRecord, base *CellRecord, samples []evaluation.Sample) error {
	baseSamples, err := evaluation.ReadSamples(filepath.Join(base.dir, evaluation.SamplesFile(base.Formulations[f].TaskName)))
	if err != nil {
		return err
	}
	for i, metric := range evaluation.Metrics(f) {
		all, byKind, err := r.compare(baseSamples, samples, metric)
		if err != nil {
			return fmt.Errorf("task %s, model %s, %s, %s: %w", c.task.Name, c.model.Name, c.cond, f, err)
		}
		if i == 0 {
			fr.VsBase, fr.VsBaseByKind = all, byKind
		} else if metric == evaluation.MetricContains {
			fr.ContainsVsBase, fr.ContainsVsBaseByKind = all, byKind
		}
	}
	return nil
}

// compare tests a metric of a cell's samples against the base cell's, on all questions and per
// question kind.
func (r *runner) compare(base, samples []evaluation.Sample, metric string) (*evaluation.Comparison, map[string]evaluation.Comparison, error) {
	c, err := evaluation.CompareMetric(base, samples, metric, r.s.Eval.Bootstrap, 1)
	if err != nil {
		return nil, nil, err
	}
	byKind := map[string]evaluation.Comparison{}
	for _, kind := range kindsOf(samples) {
		var sub []evaluation.Sample
		for _, s := range samples {
			if s.Kind == kind {
				sub = append(sub, s)
			}
		}
		if c, err := evaluation.CompareMetric(base, sub, metric, r.s.Eval.Bootstrap, 1); err == nil {
			byKind[kind] = c
		}
	}
	return &c, byKind, nil
}

// kindsOf lists the question kinds present in samples, sorted.
func kindsOf(samples []evaluation.Sample) []string {
	seen := map[string]bool{}
	for _, s := range samples {
		seen[s.Kind] = true
	}
	var kinds []string
	for k := range seen {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}
