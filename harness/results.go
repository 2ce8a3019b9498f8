package harness

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/leakage"
	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/evaluation/stats"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/plots"
	"github.com/perpetual-ml/perpetual/rag"
)

// KindAll names the row over all questions; the other kinds are curriculum.KindSeen and
// curriculum.KindDocumentOnly (and whatever kinds a test has).
const KindAll = "all"

// Alpha is the significance level of the marks in the table.
const Alpha = 0.05

// Results is results.json as the harness writes it: the lists of results.Summary that every
// reader shares (cells, loss, recall, retention), plus the harness's own per-kind table rows,
// each task's leakage and baselines, and the cell records.
type Results struct {
	Suite  string                `json:"suite"`
	Cells  []results.Cell        `json:"cells"`
	Loss   []results.LossPoint   `json:"loss"`
	Recall []results.RecallPoint `json:"recall"`
	// Rows are every (task, model, condition, formulation, metric, kind), seeds aggregated.
	Rows []Row `json:"rows"`
	// Tasks are per-task facts: curriculum, leakage, baselines.
	Tasks []TaskInfo `json:"tasks"`
	// Records are the cells as evaluated (one per seed for fine-tuned conditions).
	Records []*CellRecord `json:"records"`
	// Retention is assistant behaviour before and after each fine-tuning (recipes with
	// `retention: N`).
	Retention []RetentionRow `json:"retention,omitempty"`
}

// Row is one number of the table: a formulation's score over a question kind, averaged over
// seeds.
type Row struct {
	Task        string `json:"task"`
	Model       string `json:"model"`
	Condition   string `json:"condition"`
	Formulation string `json:"formulation"`
	// Metric is the score (evaluation.Metrics of the formulation): acc for letters and cloze,
	// exact_match and contains for recall. Acc, Low and High are that score's.
	Metric string  `json:"metric"`
	Kind   string  `json:"kind"`
	Acc    float64 `json:"acc"`
	Low    float64 `json:"low"`
	High   float64 `json:"high"`
	N      int     `json:"n"`
	// Seeds is how many fine-tuning seeds were averaged (1 for base conditions); Spread is the
	// standard deviation of acc over them.
	Seeds  int     `json:"seeds"`
	Spread float64 `json:"spread"`
	// DeltaVsBase and PValue (McNemar's exact test, the largest over seeds) compare with base on
	// the same questions; Significant means p < Alpha for every seed.
	DeltaVsBase float64 `json:"delta_vs_base"`
	PValue      float64 `json:"p_value"`
	Significant bool    `json:"significant"`
	Compared    bool    `json:"compared"`
	// Predicted counts predicted choice indexes (letter bias), summed over seeds (KindAll only).
	Predicted []int `json:"predicted,omitempty"`
}

// TaskInfo is what the report says about a task besides accuracies.
type TaskInfo struct {
	Name       string            `json:"name"`
	Curriculum string            `json:"curriculum"`
	Counts     curriculum.Counts `json:"counts"`
	Leakage    leakage.Report    `json:"leakage"`
	Baselines  stats.Baselines   `json:"baselines"`
	Recall     *rag.RecallReport `json:"recall,omitempty"`
	Retriever  string            `json:"retriever,omitempty"`
	K          int               `json:"k,omitempty"`
	KindCounts map[string]int    `json:"kind_counts"`
}

// buildResults aggregates cell records into the table.
func buildResults(s *Suite, tasks []*preparedTask, records []*CellRecord, losses []results.LossPoint) *Results {
	res := &Results{Suite: s.Name, Loss: losses, Records: records, Cells: []results.Cell{}, Recall: []results.RecallPoint{}}
	if res.Loss == nil {
		res.Loss = []results.LossPoint{}
	}
	for _, t := range tasks {
		info := TaskInfo{Name: t.Name, Curriculum: t.dir, Counts: t.cur.ComputeCounts(), Leakage: t.leakage,
			Recall: t.recall, KindCounts: map[string]int{}}
		var gold, nChoices []int
		for _, q := range t.cur.Test {
			gold = append(gold, q.Answer)
			nChoices = append(nChoices, len(q.Choices))
			info.KindCounts[q.Kind]++
		}
		info.Baselines, _ = stats.ComputeBaselines(gold, nChoices)
		if t.recall != nil {
			info.Retriever, info.K = t.RAG.Retriever, t.RAG.K
			for i, k := range t.recall.Ks {
				res.Recall = append(res.Recall, results.RecallPoint{Task: t.Name, Retriever: t.RAG.Retriever, K: k, Recall: t.recall.Recall[i]})
			}
		}
		res.Tasks = append(res.Tasks, info)
	}
	// Group records by (task, model, condition); seeds go together.
	type group struct {
		task, model, cond string
		recs              []*CellRecord
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, rec := range records {
		k := rec.Task + "\x00" + rec.Model + "\x00" + rec.Condition
		g := byKey[k]
		if g == nil {
			g = &group{task: rec.Task, model: rec.Model, cond: rec.Condition}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.recs = append(g.recs, rec)
	}
	for _, g := range groups {
		for _, f := range s.Formulations {
			kinds := []string{KindAll}
			for kind := range g.recs[0].Formulations[f].Extras.ByKind {
				kinds = append(kinds, kind)
			}
			sort.Strings(kinds[1:])
			for i, metric := range evaluation.Metrics(f) {
				for _, kind := range kinds {
					row := aggregate(g.recs, f, metric, kind)
					row.Task, row.Model, row.Condition, row.Formulation, row.Metric, row.Kind = g.task, g.model, g.cond, f, metric, kind
					res.Rows = append(res.Rows, row)
					if kind == KindAll && i == 0 { // the charts show each formulation's first score
						res.Cells = append(res.Cells, results.Cell{Task: g.task, Model: g.model, Condition: g.cond, Formulation: f,
							Acc: row.Acc, Low: row.Low, High: row.High, N: row.N, DeltaVsBase: row.DeltaVsBase,
							PValue: row.PValue, Significant: row.Significant})
					}
				}
			}
		}
	}
	return res
}

// aggregate averages one formulation's metric over a kind of questions and a group's seeds.
func aggregate(recs []*CellRecord, f, metric, kind string) Row {
	var row Row
	var accs []float64
	row.Significant = true
	for _, rec := range recs {
		fr := rec.Formulations[f]
		score := fr.Extras.Overall
		if kind != KindAll {
			score = fr.Extras.ByKind[kind]
		}
		acc, wilson := score.Acc, score.Wilson
		vsBase, vsBaseByKind := fr.VsBase, fr.VsBaseByKind
		if metric == evaluation.MetricContains {
			vsBase, vsBaseByKind = fr.ContainsVsBase, fr.ContainsVsBaseByKind
			acc, wilson = 0, [2]float64{}
			if score.Contains != nil {
				acc, wilson = score.Contains.Mean, score.Contains.Wilson
			}
		}
		accs = append(accs, acc)
		row.Low += wilson[0] / float64(len(recs))
		row.High += wilson[1] / float64(len(recs))
		row.N = score.N
		var cmp *evaluation.Comparison
		if kind == KindAll {
			cmp = vsBase
			for i, c := range fr.Predicted {
				for len(row.Predicted) <= i {
					row.Predicted = append(row.Predicted, 0)
				}
				row.Predicted[i] += c
			}
		} else if c, ok := vsBaseByKind[kind]; ok {
			cmp = &c
		}
		if cmp == nil {
			row.Significant = false
			continue
		}
		row.Compared = true
		row.DeltaVsBase += (cmp.Acc - cmp.BaseAcc) / float64(len(recs))
		row.PValue = math.Max(row.PValue, cmp.McNemar.P)
		if cmp.McNemar.P >= Alpha {
			row.Significant = false
		}
	}
	row.Significant = row.Significant && row.Compared
	row.Seeds = len(recs)
	for _, a := range accs {
		row.Acc += a / float64(len(accs))
	}
	if len(accs) > 1 {
		var ss float64
		for _, a := range accs {
			ss += (a - row.Acc) * (a - row.Acc)
		}
		row.Spread = math.Sqrt(ss / float64(len(accs)-1))
	}
	return row
}

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

// SamplesDir is where a cell's per-sample logs go inside a results folder.
func SamplesDir(out string, rec *CellRecord) string {
	name := rec.Condition
	if rec.Seed != 0 {
		name = fmt.Sprintf("%s-seed%d", rec.Condition, rec.Seed)
	}
	return filepath.Join(out, "samples", rec.Task, rec.Model, strings.ReplaceAll(name, "+", "_"))
}

// writeOutputs writes results.json, results.md, the per-sample logs and the charts.
func (r *runner) writeOutputs(res *Results, records []*CellRecord) error {
	out := r.opt.Out
	for _, rec := range records {
		for _, fr := range rec.Formulations {
			name := evaluation.SamplesFile(fr.TaskName)
			dst := filepath.Join(SamplesDir(out, rec), name)
			if sameContent(filepath.Join(rec.dir, name), dst) {
				continue
			}
			if err := copyFile(filepath.Join(rec.dir, name), dst); err != nil {
				return err
			}
		}
	}
	if err := writeJSON(filepath.Join(out, results.File), res); err != nil {
		return err
	}
	charts, err := r.renderCharts()
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(out, "results.md"), []byte(MarkdownWithCharts(res, charts))); err != nil {
		return err
	}
	page, err := IndexHTML(res, charts)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(out, IndexFile), page)
}

// renderCharts draws the charts of out/results.json into out/charts (only when what they show
// changed: the PNGs take seconds) and returns every chart file by chart name, relative to out,
// PNG where there is one.
func (r *runner) renderCharts() (map[string]string, error) {
	out := r.opt.Out
	if !r.opt.Charts {
		return nil, nil
	}
	pr, err := results.Load(out)
	if err != nil {
		return nil, err
	}
	stampKey := keyOf("charts", pr, r.opt.PNG)
	dir := filepath.Join(out, "charts")
	stamp := filepath.Join(dir, ".stamp")
	if old, err := os.ReadFile(stamp); err != nil || string(old) != stampKey {
		outs, err := plots.Render(context.WithoutCancel(r.ctx), pr, dir, plots.Options{PNG: r.opt.PNG, Chromium: r.opt.Chromium})
		if err != nil {
			return nil, fmt.Errorf("charts: %w", err)
		}
		for _, o := range outs {
			if o.PNG == "" { // a PNG of an earlier run would no longer show this chart
				_ = os.Remove(strings.TrimSuffix(o.HTML, ".html") + ".png")
			}
		}
		r.rep.ChartsRendered = true
		if err := writeAtomic(stamp, []byte(stampKey)); err != nil {
			return nil, err
		}
	}
	files := map[string]string{}
	for _, c := range plots.Build(pr) {
		for _, ext := range []string{".png", ".html"} { // a PNG shows inline: it wins
			if _, err := os.Stat(filepath.Join(dir, c.Name+ext)); err == nil {
				files[c.Name] = "charts/" + c.Name + ext
				break
			}
		}
	}
	return files, nil
}

// sameContent reports whether dst exists with src's content (so unchanged logs are not rewritten).
func sameContent(src, dst string) bool {
	a, err1 := os.ReadFile(src)
	b, err2 := os.ReadFile(dst)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// LoadResults reads a results folder's results.json as the harness wrote it.
func LoadResults(dir string) (*Results, error) {
	var res Results
	if err := readJSON(filepath.Join(dir, results.File), &res); err != nil {
		return nil, fmt.Errorf("results %s: %w", dir, err)
	}
	if res.Suite == "" || len(res.Records) == 0 {
		return nil, fmt.Errorf("results %s: %s is not a harness results file (no suite or records)", dir, results.File)
	}
	return &res, nil
}

// Task returns the named task's information.
func (r *Results) Task(name string) (*TaskInfo, error) {
	for i := range r.Tasks {
		if r.Tasks[i].Name == name {
			return &r.Tasks[i], nil
		}
	}
	return nil, fmt.Errorf("results: no task %q", name)
}

// Record returns the record of a cell (the lowest seed of a fine-tuned condition).
func (r *Results) Record(task, model, condition string) (*CellRecord, error) {
	var best *CellRecord
	for _, rec := range r.Records {
		if rec.Task == task && rec.Model == model && rec.Condition == condition && (best == nil || rec.Seed < best.Seed) {
			best = rec
		}
	}
	if best == nil {
		return nil, fmt.Errorf("results: no cell %s / %s / %s", task, model, condition)
	}
	return best, nil
}

// Samples reads a cell's per-sample log for a formulation from a results folder.
func Samples(dir string, rec *CellRecord, formulation string) ([]evaluation.Sample, error) {
	fr, ok := rec.Formulations[formulation]
	if !ok {
		return nil, fmt.Errorf("results: cell %s / %s / %s has no %s formulation", rec.Task, rec.Model, rec.Condition, formulation)
	}
	return evaluation.ReadSamples(filepath.Join(SamplesDir(dir, rec), evaluation.SamplesFile(fr.TaskName)))
}
