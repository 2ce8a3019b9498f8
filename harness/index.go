package harness

import (
	"html/template"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/plots"
)

// IndexFile is the one page of a results folder a person opens: the tables, each
// formulation's charts beside them, retention and baselines, with no network access needed
// (the charts load ECharts from charts/assets).
const IndexFile = "index.html"

// indexChart is one chart on the page: a PNG image or the interactive HTML page in a frame.
type indexChart struct {
	Name, Path string
	PNG        bool
}

type indexSection struct {
	TableSection
	Charts []indexChart
}

var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Results: suite {{.Suite}}</title>
<style>
body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; font-size: 14px; }
th { background: #f4f4f4; }
iframe { border: 0; width: 940px; height: 560px; }
img { max-width: 920px; }
</style></head><body>
<h1>Results: suite {{.Suite}}</h1>
<p>Accuracy with its Wilson 95% interval; † marks a difference from Base significant at {{.Alpha}}
(McNemar's exact test, paired over questions). The full report with baselines, letter bias and
leakage is <a href="results.md">results.md</a>; per-question logs are under samples/.</p>
{{if .RecallNote}}<p>{{.RecallNote}}</p>{{end}}
{{range .Sections}}
<h2>{{.Heading}}</h2>
<table><tr><th>Task</th><th>Model</th><th>Base</th><th>Fine-tuned</th><th>RAG</th><th>Fine-tuned + RAG</th><th>n</th></tr>
{{range .Rows}}<tr><td>{{.Task}}</td><td>{{.Model}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}<td>{{.N}}</td></tr>
{{end}}</table>
{{range .Charts}}{{if .PNG}}<p><img src="{{.Path}}" alt="{{.Name}}"></p>{{else}}<p><iframe src="{{.Path}}" title="{{.Name}}"></iframe></p>{{end}}
{{end}}{{end}}
{{if .Retention}}<h2>Assistant behaviour kept after fine-tuning (retention)</h2>
<table><tr><th>Task</th><th>Model</th><th>Seed</th><th>Prompts</th><th>Perplexity before</th><th>after</th><th>Answers that end before</th><th>after</th></tr>
{{range .Retention}}<tr><td>{{.Task}}</td><td>{{.Model}}</td><td>{{.Seed}}</td><td>{{.Prompts}}</td><td>{{printf "%.2f" .PerplexityBefore}}</td><td>{{printf "%.2f" .PerplexityAfter}}</td><td>{{printf "%.2f" .StopRateBefore}}</td><td>{{printf "%.2f" .StopRateAfter}}</td></tr>
{{end}}</table>{{end}}
<h2>Baselines</h2>
<table><tr><th>Task</th><th>Questions</th><th>Chance</th><th>Always A</th><th>Always B</th><th>Always C</th><th>Always D</th></tr>
{{range .Tasks}}<tr><td>{{.Name}}</td><td>{{.Counts.Test}}</td><td>{{printf "%.3f" .Baselines.Chance}}</td><td>{{printf "%.3f" (index .Baselines.Always "A")}}</td><td>{{printf "%.3f" (index .Baselines.Always "B")}}</td><td>{{printf "%.3f" (index .Baselines.Always "C")}}</td><td>{{printf "%.3f" (index .Baselines.Always "D")}}</td></tr>
{{end}}</table>
{{if .Others}}<h2>Other charts</h2>
{{range .Others}}{{if .PNG}}<p><img src="{{.Path}}" alt="{{.Name}}"></p>{{else}}<p><iframe src="{{.Path}}" title="{{.Name}}"></iframe></p>{{end}}
{{end}}{{end}}
</body></html>
`))

// IndexHTML renders index.html: the tables of TableSections with each formulation's accuracy and
// delta charts after its "all questions" table, retention, baselines, then the remaining charts
// (loss, recall). charts maps chart names to paths relative to the page, as MarkdownWithCharts.
func IndexHTML(res *Results, charts map[string]string) ([]byte, error) {
	placed := map[string]bool{}
	chart := func(name string) (indexChart, bool) {
		path, ok := charts[name]
		if ok {
			placed[name] = true
		}
		return indexChart{Name: name, Path: path, PNG: strings.HasSuffix(path, ".png")}, ok
	}
	var secs []indexSection
	for _, sec := range TableSections(res) {
		is := indexSection{TableSection: sec}
		if sec.Charted() {
			var names []string
			for _, t := range res.Tasks {
				names = append(names, plots.Slug(plots.KindAccuracy, t.Name, sec.Formulation))
			}
			for _, n := range append(names, plots.Slug(plots.KindDelta, sec.Formulation)) {
				if c, ok := chart(n); ok {
					is.Charts = append(is.Charts, c)
				}
			}
		}
		secs = append(secs, is)
	}
	var others []indexChart
	var names []string
	for n := range charts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !placed[n] {
			c, _ := chart(n)
			others = append(others, c)
		}
	}
	var b strings.Builder
	note := ""
	if hasRecall(res) {
		note = recallNote()
	}
	err := indexTemplate.Execute(&b, map[string]any{"Suite": res.Suite, "Alpha": Alpha, "Sections": secs, "RecallNote": note,
		"Retention": res.Retention, "Tasks": res.Tasks, "Others": others})
	return []byte(b.String()), err
}
