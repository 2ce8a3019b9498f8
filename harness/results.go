package harness

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/leakage"
	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/evaluation/stats"
	"github.com/perpetual-ml/perpetual/harness/results"
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
	Retention []results.RetentionPoint `json:"retention,omitempty"`
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

// buildResults makes results.json from a run: each task's facts and recall@k, and the table's
// rows (and the chart cells) aggregated over each cell's seeds.
func buildResults(s *Suite, tasks []*preparedTask, records []*CellRecord, losses []results.LossPoint) *Results {
	res := &Results{Suite: s.Name, Loss: losses, Records: records, Cells: []results.Cell{}, Recall: []results.RecallPoint{}}
	if res.Loss == nil {
		res.Loss = []results.LossPoint{}
	}
	for _, t := range tasks {
		res.Tasks = append(res.Tasks, taskInfo(t))
		res.Recall = append(res.Recall, recallPoints(t)...)
	}
	for _, g := range seedGroups(records) {
		rows, cells := g.rows(s.Formulations)
		res.Rows = append(res.Rows, rows...)
		res.Cells = append(res.Cells, cells...)
	}
	return res
}

// taskInfo is what the report says about a task: its curriculum's counts, leakage, baselines
// and retrieval.
func taskInfo(t *preparedTask) TaskInfo {
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
	}
	return info
}

// recallPoints are a task's recall@k measurements (none when the suite does not retrieve).
func recallPoints(t *preparedTask) []results.RecallPoint {
	if t.recall == nil {
		return nil
	}
	var out []results.RecallPoint
	for i, k := range t.recall.Ks {
		out = append(out, results.RecallPoint{Task: t.Name, Retriever: t.RAG.Retriever, K: k, Recall: t.recall.Recall[i]})
	}
	return out
}

// seedGroup is the records of one (task, model, condition): one per seed for fine-tuned
// conditions.
type seedGroup struct {
	task, model, cond string
	recs              []*CellRecord
}

// seedGroups groups records by (task, model, condition), in the order they first appear.
func seedGroups(records []*CellRecord) []*seedGroup {
	var groups []*seedGroup
	byKey := map[string]*seedGroup{}
	for _, rec := range records {
		k := rec.Task + "\x00" + rec.Model + "\x00" + rec.Condition
		g := byKey[k]
		if g == nil {
			g = &seedGroup{task: rec.Task, model: rec.Model, cond: rec.Condition}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.recs = append(g.recs, rec)
	}
	return groups
}

// rows are the group's table rows, per formulation, metric and question kind (all questions
// first, then the kinds sorted), and its chart cells: each formulation's first metric on all
// questions.
func (g *seedGroup) rows(formulations []string) ([]Row, []results.Cell) {
	var rows []Row
	var cells []results.Cell
	for _, f := range formulations {
		kinds := []string{KindAll}
		for kind := range g.recs[0].Formulations[f].Extras.ByKind {
			kinds = append(kinds, kind)
		}
		sort.Strings(kinds[1:])
		for i, metric := range evaluation.Metrics(f) {
			for _, kind := range kinds {
				row := aggregate(g.recs, f, metric, kind)
				row.Task, row.Model, row.Condition, row.Formulation, row.Metric, row.Kind = g.task, g.model, g.cond, f, metric, kind
				rows = append(rows, row)
				if kind == KindAll && i == 0 { // the charts show each formulation's first score
					cells = append(cells, results.Cell{Task: g.task, Model: g.model, Condition: g.cond, Formulation: f,
						Acc: row.Acc, Low: row.Low, High: row.High, N: row.N, DeltaVsBase: row.DeltaVsBase,
						PValue: row.PValue, Significant: row.Significant})
				}
			}
		}
	}
	return rows, cells
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
