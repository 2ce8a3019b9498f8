package harness

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/plots"
)

// FormatCell is a table cell: "0.412 [0.36, 0.47]", "†" when significant versus base, and
// "± spread (n seeds)" when seeds were averaged.
func FormatCell(r Row) string {
	s := fmt.Sprintf("%.3f [%.2f, %.2f]", r.Acc, r.Low, r.High)
	if r.Seeds > 1 {
		s += fmt.Sprintf(" ±%.3f (%d seeds)", r.Spread, r.Seeds)
	}
	if r.Significant {
		s += " †"
	}
	return s
}

// TableSection is one table of the report: a formulation, one of its metrics and a question
// kind, one row per (task, model) with a formatted cell (FormatCell, "–" when missing) per
// results.Conditions.
type TableSection struct {
	Formulation, Metric, Kind string
	Rows                      []TableRow
}

// metricLabels name recall's scores in headings.
var metricLabels = map[string]string{evaluation.MetricExactMatch: "exact match", evaluation.MetricContains: "contains the answer"}

// Heading is the table's title: "cloze formulation, document-only questions", with the metric
// for a formulation that reports several ("recall formulation (exact match), all questions").
func (s TableSection) Heading() string {
	metric := ""
	if len(evaluation.Metrics(s.Formulation)) > 1 {
		label := metricLabels[s.Metric]
		if label == "" {
			label = s.Metric
		}
		metric = " (" + label + ")"
	}
	return fmt.Sprintf("%s formulation%s, %s questions", s.Formulation, metric, strings.ReplaceAll(s.Kind, "_", "-"))
}

// Charted reports whether the section is the one its formulation's charts illustrate: all
// questions, the formulation's first metric.
func (s TableSection) Charted() bool {
	return s.Kind == KindAll && s.Metric == evaluation.Metrics(s.Formulation)[0]
}

// TableRow is one (task, model) row of a TableSection.
type TableRow struct {
	Task, Model string
	Cells       []string
	N           int
}

// TableSections groups res.Rows into the report's tables, formulations and kinds in the order
// they first appear: the one layout results.md and index.html share.
func TableSections(res *Results) []TableSection {
	type tm struct{ task, model string }
	type secKey struct{ form, metric, kind string }
	byKey := map[secKey]map[tm]map[string]Row{}
	var forms, kinds []string
	metrics := map[string][]string{} // by formulation, in order of appearance
	var pairs []tm
	seenPair := map[tm]bool{}
	for _, r := range res.Rows {
		metric := r.Metric
		if metric == "" { // results.json written before rows named their metric
			metric = evaluation.Metrics(r.Formulation)[0]
		}
		k := secKey{r.Formulation, metric, r.Kind}
		if byKey[k] == nil {
			byKey[k] = map[tm]map[string]Row{}
			if !contains(forms, r.Formulation) {
				forms = append(forms, r.Formulation)
			}
			if !contains(metrics[r.Formulation], metric) {
				metrics[r.Formulation] = append(metrics[r.Formulation], metric)
			}
			if !contains(kinds, r.Kind) {
				kinds = append(kinds, r.Kind)
			}
		}
		p := tm{r.Task, r.Model}
		if byKey[k][p] == nil {
			byKey[k][p] = map[string]Row{}
		}
		byKey[k][p][r.Condition] = r
		if !seenPair[p] {
			seenPair[p] = true
			pairs = append(pairs, p)
		}
	}
	var out []TableSection
	for _, f := range forms {
		for _, metric := range metrics[f] {
			for _, kind := range kinds {
				sec := byKey[secKey{f, metric, kind}]
				if sec == nil {
					continue
				}
				ts := TableSection{Formulation: f, Metric: metric, Kind: kind}
				for _, p := range pairs {
					conds := sec[p]
					if conds == nil {
						continue
					}
					row := TableRow{Task: p.task, Model: p.model}
					for _, c := range results.Conditions {
						if r, ok := conds[c]; ok {
							row.Cells = append(row.Cells, FormatCell(r))
							row.N = r.N
						} else {
							row.Cells = append(row.Cells, "–")
						}
					}
					ts.Rows = append(ts.Rows, row)
				}
				out = append(out, ts)
			}
		}
	}
	return out
}

// hasRecall reports whether the results have recall rows.
func hasRecall(res *Results) bool {
	for _, r := range res.Rows {
		if r.Formulation == evaluation.Recall {
			return true
		}
	}
	return false
}

// recallNote explains the recall tables of results.md and index.html, with the embedded recall
// task's generation settings.
func recallNote() string {
	limit := ""
	if t, err := evaluation.DefaultTask(evaluation.Recall); err == nil {
		limit = fmt.Sprintf(" (at most %d tokens, ended by EOS or the first of %q)", t.GenerationKwargs.MaxGenToks, t.GenerationKwargs.Until)
	}
	return "Recall formulation: the question without its options, answered greedily" + limit + "; exact match is " +
		"the share of answers equal to the gold option's text after SQuAD normalisation (lowercase, punctuation and " +
		"a/an/the removed, whitespace collapsed), contains the share whose normalised answer contains the normalised " +
		"gold answer as whole words. Same intervals and paired test as the other tables."
}

// Markdown renders results.md: for each formulation and question kind, the paper's table
// (Task, Model, Base, Fine-tuned, RAG, Fine-tuned + RAG), then baselines, letter bias, retrieval
// recall and each task's leakage report.
func Markdown(res *Results) string { return MarkdownWithCharts(res, nil) }

// MarkdownWithCharts is Markdown with each accuracy and delta chart linked next to the table it
// illustrates: charts maps a chart name (plots.Chart.Name) to its path relative to results.md
// (a PNG shows inline, an HTML page is a link). Charts not in the map are left out.
func MarkdownWithCharts(res *Results, charts map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Results: suite %s\n\n", res.Suite)
	fmt.Fprintf(&b, "Accuracy with its Wilson 95%% interval; † marks a difference from Base significant at %.2f "+
		"(McNemar's exact test, paired over questions; with several seeds, significant for every seed).\n\n", Alpha)
	if hasRecall(res) {
		b.WriteString(recallNote() + "\n\n")
	}
	for _, sec := range TableSections(res) {
		fmt.Fprintf(&b, "## %s\n\n", sec.Heading())
		b.WriteString("| Task | Model | Base | Fine-tuned | RAG | Fine-tuned + RAG | n |\n|---|---|---|---|---|---|---|\n")
		for _, r := range sec.Rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %d |\n", r.Task, r.Model, strings.Join(r.Cells, " | "), r.N)
		}
		b.WriteString("\n")
		if sec.Charted() {
			writeChartLinks(&b, res, sec.Formulation, charts)
		}
	}
	b.WriteString("## Baselines\n\n| Task | Questions | Chance | Always A | Always B | Always C | Always D |\n|---|---|---|---|---|---|---|\n")
	for _, t := range res.Tasks {
		fmt.Fprintf(&b, "| %s | %d | %.3f |", t.Name, t.Counts.Test, t.Baselines.Chance)
		for _, l := range []string{"A", "B", "C", "D"} {
			fmt.Fprintf(&b, " %.3f |", t.Baselines.Always[l])
		}
		b.WriteString("\n")
	}
	if len(res.Retention) > 0 {
		b.WriteString("\n## Assistant behaviour kept after fine-tuning (retention)\n\n" +
			"General instructions held out from every training set: the perplexity of their reference answers " +
			"(lower is better) and the share answered with a reply that ends (EOS) within the limit, " +
			"before -> after fine-tuning.\n\n" +
			"| Task | Model | Seed | Prompts | Perplexity | Answers that end |\n|---|---|---|---|---|---|\n")
		for _, r := range res.Retention {
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %.2f -> %.2f | %.2f -> %.2f |\n", r.Task, r.Model, r.Seed, r.Prompts,
				r.PerplexityBefore, r.PerplexityAfter, r.StopRateBefore, r.StopRateAfter)
		}
		if r := res.Retention[0]; r.Prompt != "" {
			fmt.Fprintf(&b, "\nFirst prompt (%s, %s): %q\n\n- before: %q\n- after: %q\n", r.Task, r.Model, r.Prompt, r.SampleBefore, r.SampleAfter)
		}
	}
	b.WriteString("\n## Letter bias (letters formulation: share of predictions per letter)\n\n" +
		"| Task | Model | Condition | A | B | C | D |\n|---|---|---|---|---|---|---|\n")
	for _, r := range res.Rows {
		if r.Formulation != evaluation.Letters || r.Kind != KindAll {
			continue
		}
		total := 0
		for _, c := range r.Predicted {
			total += c
		}
		fmt.Fprintf(&b, "| %s | %s | %s |", r.Task, r.Model, r.Condition)
		for i := range 4 {
			share := 0.0
			if i < len(r.Predicted) && total > 0 {
				share = float64(r.Predicted[i]) / float64(total)
			}
			fmt.Fprintf(&b, " %.2f |", share)
		}
		b.WriteString("\n")
	}
	if len(res.Recall) > 0 {
		b.WriteString("\n## Retrieval recall@k\n\n| Task | Retriever | k | Recall |\n|---|---|---|---|\n")
		for _, p := range res.Recall {
			fmt.Fprintf(&b, "| %s | %s | %d | %.3f |\n", p.Task, p.Retriever, p.K, p.Recall)
		}
	}
	for _, t := range res.Tasks {
		fmt.Fprintf(&b, "\n## Leakage: %s\n\n", t.Name)
		fmt.Fprintf(&b, "Questions by kind: %s.\n\n```\n", formatCounts(t.KindCounts))
		var lb bytes.Buffer
		t.Leakage.Format(&lb)
		b.Write(lb.Bytes())
		b.WriteString("```\n")
	}
	return b.String()
}

// writeChartLinks links formulation f's accuracy charts (one per task) and its delta chart.
func writeChartLinks(b *strings.Builder, res *Results, f string, charts map[string]string) {
	var names []string
	for _, t := range res.Tasks {
		names = append(names, plots.Slug(plots.KindAccuracy, t.Name, f))
	}
	names = append(names, plots.Slug(plots.KindDelta, f))
	wrote := false
	for _, n := range names {
		path, ok := charts[n]
		if !ok {
			continue
		}
		if strings.HasSuffix(path, ".png") {
			fmt.Fprintf(b, "![%s](%s)\n", n, path)
		} else {
			fmt.Fprintf(b, "- chart: [%s](%s)\n", n, path)
		}
		wrote = true
	}
	if wrote {
		b.WriteString("\n")
	}
}

func formatCounts(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
