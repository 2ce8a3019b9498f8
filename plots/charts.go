package plots

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/render"
	"github.com/go-echarts/go-echarts/v2/types"

	"github.com/perpetual-ml/perpetual/harness/results"
)

// Chart is one chart ready to be written as HTML, photographed as PNG or shown in a notebook.
// A go-echarts chart mutates itself when rendered (it prefixes its asset paths once), so Chart
// keeps a constructor and builds a fresh go-echarts value for every rendering.
type Chart struct {
	// Name is the file stem: lower-case letters, digits and dashes, unique within one Build.
	Name string
	// Title is the chart's heading.
	Title string
	// Width and Height are the canvas size in CSS pixels.
	Width, Height int

	build func(init opts.Initialization) render.Renderer
}

// Kind prefixes of Chart.Name, one per chart family.
const (
	KindAccuracy = "accuracy"
	KindDelta    = "delta"
	KindLoss     = "loss"
	KindRecall   = "recall"
	KindCurve    = "curve"
	KindGain     = "gain-retention"
)

// conditionColour keeps a condition's colour the same on every chart.
var conditionColour = map[string]string{
	results.Base:         "#8c8c8c",
	results.FineTuned:    "#5470c6",
	results.RAG:          "#3ba272",
	results.FineTunedRAG: "#ee6666",
}

// palette colours series that are not conditions (models, retrievers), in first-seen order.
var palette = []string{"#5470c6", "#ee6666", "#3ba272", "#fac858", "#73c0de", "#9a60b4", "#fc8452", "#ea7ccc"}

const (
	barGap         = "20%"
	barCategoryGap = "25%"
)

// errorBarJS draws one whisker per data item [category, low, high, seriesIndex, seriesCount],
// centred on the bar of the same series: api.barLayout reproduces the bar series' layout (same
// gaps as barGap/barCategoryGap), which ECharts does not expose to custom series otherwise.
// ECharts has no built-in error bars; this is the documented way to add them. z2 lifts the
// whiskers above the bars, which would otherwise hide the lower half. FuncOpts joins
// lines, so no // comments inside.
const errorBarJS = `function (params, api) {
  var lo = api.coord([api.value(0), api.value(1)]);
  var hi = api.coord([api.value(0), api.value(2)]);
  var layout = api.barLayout({count: api.value(4), barGap: '` + barGap + `', barCategoryGap: '` + barCategoryGap + `'});
  var bar = layout[api.value(3)];
  var x = lo[0] + bar.offsetCenter;
  var half = Math.max(2, bar.width * 0.25);
  var style = {stroke: '#222', lineWidth: 1.5, fill: null};
  return {type: 'group', children: [
    {type: 'line', z2: 100, shape: {x1: x - half, y1: hi[1], x2: x + half, y2: hi[1]}, style: style},
    {type: 'line', z2: 100, shape: {x1: x, y1: hi[1], x2: x, y2: lo[1]}, style: style},
    {type: 'line', z2: 100, shape: {x1: x - half, y1: lo[1], x2: x + half, y2: lo[1]}, style: style}
  ]};
}`

// Build makes every chart the results support: accuracy and delta charts per task and
// formulation when there are cells, a loss chart per task with logged training, a recall chart
// per task with retrieval measurements. The order is stable (by kind, then name).
func Build(res *results.Summary) []*Chart {
	var out []*Chart
	out = append(out, AccuracyCharts(res.Cells)...)
	out = append(out, DeltaCharts(res.Cells)...)
	out = append(out, LossCharts(res.Loss)...)
	out = append(out, RecallCharts(res.Recall)...)
	out = append(out, CurveCharts(res.Curves)...)
	out = append(out, GainRetentionCharts(res.Cells, res.Retention)...)
	// Different names can share a slug ("a b" and "a-b"): number the later ones.
	count := map[string]int{}
	for _, c := range out {
		count[c.Name]++
		if n := count[c.Name]; n > 1 {
			c.Name = fmt.Sprintf("%s-%d", c.Name, n)
		}
	}
	return out
}

// AccuracyCharts makes one bar chart per task and formulation: models on the x axis, one bar per
// condition with its 95% interval as a whisker, accuracy on a fixed 0..1 axis.
func AccuracyCharts(cells []results.Cell) []*Chart {
	var out []*Chart
	for _, g := range groupCells(cells, func(c results.Cell) string { return c.Task + "\x00" + c.Formulation }) {
		task, form := g[0].Task, g[0].Formulation
		models := uniqueInOrder(g, func(c results.Cell) string { return c.Model })
		conds := presentConditions(g)
		byKey := map[[2]string]results.Cell{}
		for _, c := range g {
			byKey[[2]string{c.Model, c.Condition}] = c
		}
		title := "Accuracy: " + task + withFormulation(form)
		ch := &Chart{Name: slug(KindAccuracy, task, form), Title: title, Width: chartWidth(len(models) * len(conds)), Height: 480}
		ch.build = func(init opts.Initialization) render.Renderer {
			bar := charts.NewBar()
			bar.SetGlobalOptions(common(init, title, "bars: accuracy; whiskers: 95% interval; n = questions per cell")...)
			bar.SetGlobalOptions(
				charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "52", Data: conds}),
				charts.WithYAxisOpts(opts.YAxis{Name: "accuracy", Min: 0, Max: 1}),
				charts.WithXAxisOpts(opts.XAxis{Name: "model", AxisLabel: &opts.AxisLabel{Interval: "0"}}),
			)
			bar.SetXAxis(models)
			whiskers := charts.NewCustom()
			for si, cond := range conds {
				data := make([]opts.BarData, len(models))
				var bars []opts.CustomData
				for mi, m := range models {
					c, ok := byKey[[2]string{m, cond}]
					if !ok {
						data[mi] = opts.BarData{Value: "-"} // ECharts' marker for a missing value
						continue
					}
					tip := tooltipText(fmt.Sprintf("%s, %s: %.3f [%.3f, %.3f], n=%d", m, cond, c.Acc, c.Low, c.High, c.N))
					data[mi] = opts.BarData{Name: m, Value: round4(c.Acc), Tooltip: tip}
					bars = append(bars, opts.CustomData{Value: []any{mi, round4(c.Low), round4(c.High), si, len(conds)}, Tooltip: tip})
				}
				bar.AddSeries(cond, data,
					charts.WithItemStyleOpts(opts.ItemStyle{Color: conditionColour[cond]}),
					charts.WithBarChartOpts(opts.BarChart{BarGap: barGap, BarCategoryGap: barCategoryGap}))
				// Same name as the bars: the legend toggles a condition's bars and whiskers together.
				whiskers.AddSeries(cond, bars,
					charts.WithCustomChartOpts(opts.CustomChart{RenderItem: opts.FuncOpts(errorBarJS)}),
					charts.WithItemStyleOpts(opts.ItemStyle{Color: conditionColour[cond]}))
			}
			bar.Overlap(whiskers)
			return bar
		}
		out = append(out, ch)
	}
	return out
}

// DeltaCharts makes one bar chart per formulation with every task and model on the x axis and one
// bar per non-base condition: its accuracy minus base. Significant differences are solid and
// marked "*", the others are faded.
func DeltaCharts(cells []results.Cell) []*Chart {
	var out []*Chart
	for _, g := range groupCells(cells, func(c results.Cell) string { return c.Formulation }) {
		form := g[0].Formulation
		var nonBase []results.Cell
		for _, c := range g {
			if c.Condition != results.Base {
				nonBase = append(nonBase, c)
			}
		}
		if len(nonBase) == 0 {
			continue
		}
		cats := uniqueInOrder(nonBase, func(c results.Cell) string { return c.Task + " / " + c.Model })
		conds := presentConditions(nonBase)
		byKey := map[[2]string]results.Cell{}
		for _, c := range nonBase {
			byKey[[2]string{c.Task + " / " + c.Model, c.Condition}] = c
		}
		title := "Accuracy change vs base" + withFormulation(form)
		ch := &Chart{Name: slug(KindDelta, form), Title: title, Width: chartWidth(len(cats) * len(conds)), Height: 480}
		ch.build = func(init opts.Initialization) render.Renderer {
			bar := charts.NewBar()
			bar.SetGlobalOptions(common(init, title, "condition accuracy minus base accuracy; * and solid: significant (paired test)")...)
			bar.SetGlobalOptions(
				charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "52", Data: conds}),
				charts.WithYAxisOpts(opts.YAxis{Name: "accuracy - base"}),
				charts.WithXAxisOpts(opts.XAxis{AxisLabel: &opts.AxisLabel{Interval: "0", Rotate: labelRotation(len(cats))}}),
			)
			bar.SetXAxis(cats)
			for _, cond := range conds {
				data := make([]opts.BarData, len(cats))
				for i, cat := range cats {
					c, ok := byKey[[2]string{cat, cond}]
					if !ok {
						data[i] = opts.BarData{Value: "-"}
						continue
					}
					d := opts.BarData{
						Value:   round4(c.DeltaVsBase),
						Tooltip: tooltipText(fmt.Sprintf("%s, %s: %+.3f (p=%.3g)", cat, cond, c.DeltaVsBase, c.PValue)),
					}
					if c.Significant {
						d.Label = &opts.Label{Show: opts.Bool(true), Position: "top", Formatter: "*", FontSize: 16}
					} else {
						d.ItemStyle = &opts.ItemStyle{Color: conditionColour[cond], Opacity: opts.Float(0.35)}
					}
					data[i] = d
				}
				bar.AddSeries(cond, data,
					charts.WithItemStyleOpts(opts.ItemStyle{Color: conditionColour[cond]}),
					charts.WithBarChartOpts(opts.BarChart{BarGap: barGap, BarCategoryGap: barCategoryGap}))
			}
			return bar
		}
		out = append(out, ch)
	}
	return out
}

// stepLines is an empty line chart of some value (yName) against the training step, with the
// legend and tooltip of the loss and learning-curve charts.
func stepLines(init opts.Initialization, title, subtitle, yName string) *charts.Line {
	line := charts.NewLine()
	line.SetGlobalOptions(common(init, title, subtitle)...)
	line.SetGlobalOptions(
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "52"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "step", Min: "dataMin", Max: "dataMax"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: yName, Scale: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
	)
	return line
}

// sortedKeys lists the distinct keys of items, sorted.
func sortedKeys[T any](items []T, key func(T) string) []string {
	var out []string
	for _, it := range items {
		if k := key(it); !contains(out, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// LossCharts makes one line chart per task: training loss against step for every model, and the
// validation loss as a dashed line of the same colour where it was logged.
func LossCharts(points []results.LossPoint) []*Chart {
	byTask := map[string][]results.LossPoint{}
	var tasks []string
	for _, p := range points {
		if _, ok := byTask[p.Task]; !ok {
			tasks = append(tasks, p.Task)
		}
		byTask[p.Task] = append(byTask[p.Task], p)
	}
	sort.Strings(tasks)
	var out []*Chart
	for _, task := range tasks {
		ps := append([]results.LossPoint(nil), byTask[task]...)
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Step < ps[j].Step })
		models := sortedKeys(ps, func(p results.LossPoint) string { return p.Model })
		title := "Training loss: " + task
		ch := &Chart{Name: slug(KindLoss, task), Title: title, Width: 900, Height: 480}
		ch.build = func(init opts.Initialization) render.Renderer {
			line := stepLines(init, title, "solid: training loss; dashed: validation loss", "loss")
			for i, m := range models {
				colour := palette[i%len(palette)]
				var train, val []opts.LineData
				for _, p := range ps {
					if p.Model != m {
						continue
					}
					train = append(train, opts.LineData{Value: []any{p.Step, round4(p.Loss)}})
					if p.ValLoss != nil {
						val = append(val, opts.LineData{Value: []any{p.Step, round4(*p.ValLoss)}})
					}
				}
				line.AddSeries(m+" train", train,
					charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(len(train) < 40)}),
					charts.WithItemStyleOpts(opts.ItemStyle{Color: colour}),
					charts.WithLineStyleOpts(opts.LineStyle{Color: colour, Width: 2}))
				if len(val) > 0 {
					line.AddSeries(m+" val", val,
						charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(true)}),
						charts.WithItemStyleOpts(opts.ItemStyle{Color: colour}),
						charts.WithLineStyleOpts(opts.LineStyle{Color: colour, Width: 2, Type: "dashed"}))
				}
			}
			return line
		}
		out = append(out, ch)
	}
	return out
}

// CurveCharts makes one line chart per model: every probe's score against the training step
// (the learning curve, where a plateau and the change after it show).
func CurveCharts(points []results.CurvePoint) []*Chart {
	byModel := map[string][]results.CurvePoint{}
	var models []string
	for _, p := range points {
		if _, ok := byModel[p.Model]; !ok {
			models = append(models, p.Model)
		}
		byModel[p.Model] = append(byModel[p.Model], p)
	}
	sort.Strings(models)
	var out []*Chart
	for _, model := range models {
		ps := append([]results.CurvePoint(nil), byModel[model]...)
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Step < ps[j].Step })
		probes := sortedKeys(ps, func(p results.CurvePoint) string { return p.Probe })
		title := "Learning curve: " + model
		ch := &Chart{Name: slug(KindCurve, model), Title: title, Width: 900, Height: 480}
		ch.build = func(init opts.Initialization) render.Renderer {
			line := stepLines(init, title, "held-out probes scored during training", "score")
			for i, probe := range probes {
				colour := palette[i%len(palette)]
				var data []opts.LineData
				for _, p := range ps {
					if p.Probe == probe {
						data = append(data, opts.LineData{Value: []any{p.Step, round4(p.Value)}})
					}
				}
				line.AddSeries(probe, data,
					charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(len(data) < 60)}),
					charts.WithItemStyleOpts(opts.ItemStyle{Color: colour}),
					charts.WithLineStyleOpts(opts.LineStyle{Color: colour, Width: 2}))
			}
			return line
		}
		out = append(out, ch)
	}
	return out
}

// GainRetentionCharts makes one scatter chart per formulation: for every fine-tuning (a task and
// a model; seeds averaged), the new-knowledge gain (fine-tuned accuracy minus base) against the
// retention loss (held-out answer perplexity after / before, 1 = unchanged), one series per model.
func GainRetentionCharts(cells []results.Cell, ret []results.RetentionPoint) []*Chart {
	if len(ret) == 0 {
		return nil
	}
	type tm struct{ task, model string }
	ratio := map[tm][]float64{}
	for _, p := range ret {
		k := tm{p.Task, p.Model}
		ratio[k] = append(ratio[k], p.PerplexityAfter/p.PerplexityBefore)
	}
	var forms []string
	gain := map[string]map[tm]float64{}
	for _, c := range cells {
		if c.Condition != results.FineTuned {
			continue
		}
		if _, ok := ratio[tm{c.Task, c.Model}]; !ok {
			continue
		}
		if gain[c.Formulation] == nil {
			gain[c.Formulation] = map[tm]float64{}
			forms = append(forms, c.Formulation)
		}
		gain[c.Formulation][tm{c.Task, c.Model}] = c.DeltaVsBase
	}
	sort.Strings(forms)
	var out []*Chart
	for _, f := range forms {
		pts := gain[f]
		var models []string
		for k := range pts {
			if !contains(models, k.model) {
				models = append(models, k.model)
			}
		}
		sort.Strings(models)
		title := "New knowledge against retention (" + f + ")"
		ch := &Chart{Name: slug(KindGain, f), Title: title, Width: 900, Height: 480}
		ch.build = func(init opts.Initialization) render.Renderer {
			sc := charts.NewScatter()
			sc.SetGlobalOptions(common(init, title, "x: held-out answer perplexity after / before fine-tuning; y: fine-tuned accuracy minus base")...)
			sc.SetGlobalOptions(
				charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "52"}),
				charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "ppl ratio", Scale: opts.Bool(true)}),
				charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "accuracy gain"}),
				charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item"}),
			)
			for i, m := range models {
				var data []opts.ScatterData
				var tasks []string
				for k := range pts {
					if k.model == m {
						tasks = append(tasks, k.task)
					}
				}
				sort.Strings(tasks)
				for _, t := range tasks {
					rs := ratio[tm{t, m}]
					mean := 0.0
					for _, r := range rs {
						mean += r
					}
					mean /= float64(len(rs))
					data = append(data, opts.ScatterData{Name: t, Value: []any{round4(mean), round4(pts[tm{t, m}])}, SymbolSize: 14})
				}
				colour := palette[i%len(palette)]
				sc.AddSeries(m, data, charts.WithItemStyleOpts(opts.ItemStyle{Color: colour}),
					charts.WithLabelOpts(opts.Label{Show: opts.Bool(true), Position: "right", Formatter: "{b}"}))
			}
			return sc
		}
		out = append(out, ch)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// RecallCharts makes one line chart per task: recall@k against k for every retriever.
func RecallCharts(points []results.RecallPoint) []*Chart {
	byTask := map[string][]results.RecallPoint{}
	var tasks []string
	for _, p := range points {
		if _, ok := byTask[p.Task]; !ok {
			tasks = append(tasks, p.Task)
		}
		byTask[p.Task] = append(byTask[p.Task], p)
	}
	sort.Strings(tasks)
	var out []*Chart
	for _, task := range tasks {
		ps := append([]results.RecallPoint(nil), byTask[task]...)
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].K < ps[j].K })
		var retrievers []string
		seen := map[string]bool{}
		for _, p := range ps {
			if !seen[p.Retriever] {
				seen[p.Retriever] = true
				retrievers = append(retrievers, p.Retriever)
			}
		}
		sort.Strings(retrievers)
		var ks []string
		kIndex := map[int]int{}
		for _, p := range ps {
			if _, ok := kIndex[p.K]; !ok {
				kIndex[p.K] = len(ks)
				ks = append(ks, fmt.Sprint(p.K))
			}
		}
		title := "Retrieval recall@k: " + task
		ch := &Chart{Name: slug(KindRecall, task), Title: title, Width: 900, Height: 480}
		ch.build = func(init opts.Initialization) render.Renderer {
			line := charts.NewLine()
			line.SetGlobalOptions(common(init, title, "share of questions whose source chunk is among the top k retrieved")...)
			line.SetGlobalOptions(
				charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "52"}),
				// k is usually a doubling series (1, 2, 4, 8...): evenly spaced categories read better
				// than a linear axis that crowds the small k.
				charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "k"}),
				charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "recall@k", Min: 0, Max: 1}),
				charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
			)
			line.SetXAxis(ks)
			for i, r := range retrievers {
				colour := palette[i%len(palette)]
				data := make([]opts.LineData, len(ks))
				for i := range data {
					data[i] = opts.LineData{Value: "-"}
				}
				for _, p := range ps {
					if p.Retriever == r {
						data[kIndex[p.K]] = opts.LineData{Value: round4(p.Recall)}
					}
				}
				line.AddSeries(r, data,
					charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(true), SymbolSize: 8, ConnectNulls: opts.Bool(true)}),
					charts.WithItemStyleOpts(opts.ItemStyle{Color: colour}),
					charts.WithLineStyleOpts(opts.LineStyle{Color: colour, Width: 2}))
			}
			return line
		}
		out = append(out, ch)
	}
	return out
}

// common holds the options every chart shares: size, white background (the PNG blank check and
// dark-mode viewers rely on it), title, no animation (a screenshot must catch the final frame).
func common(init opts.Initialization, title, subtitle string) []charts.GlobalOpts {
	return []charts.GlobalOpts{
		charts.WithInitializationOpts(init),
		charts.WithAnimation(false),
		charts.WithTitleOpts(opts.Title{Title: title, Subtitle: subtitle, Left: "center"}),
		charts.WithGridOpts(opts.Grid{Top: "95", Left: "60", Right: "60", Bottom: "60", ContainLabel: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item"}),
	}
}

// tooltipText is a fixed tooltip for one data item. ECharts reads a formatter string as a template
// ({a}, {b}, {c} are placeholders), so braces in names are replaced; the string travels as plain
// JSON (not as a JavaScript function, whose quotes go-echarts would leave JSON-escaped).
func tooltipText(s string) *opts.Tooltip {
	s = strings.NewReplacer("{", "(", "}", ")").Replace(s)
	return &opts.Tooltip{Formatter: types.FuncStr(s)}
}

// labelRotation tilts category labels when there are too many to sit side by side.
func labelRotation(categories int) float64 {
	if categories > 6 {
		return 30
	}
	return 0
}

// groupCells splits cells by key, groups sorted by key, cells in input order.
func groupCells(cells []results.Cell, key func(results.Cell) string) [][]results.Cell {
	m := map[string][]results.Cell{}
	var keys []string
	for _, c := range cells {
		k := key(c)
		if _, ok := m[k]; !ok {
			keys = append(keys, k)
		}
		m[k] = append(m[k], c)
	}
	sort.Strings(keys)
	out := make([][]results.Cell, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

func uniqueInOrder(cells []results.Cell, key func(results.Cell) string) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range cells {
		if k := key(c); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// presentConditions returns the conditions that occur in cells, in the canonical order.
func presentConditions(cells []results.Cell) []string {
	var out []string
	for _, cond := range results.Conditions {
		for _, c := range cells {
			if c.Condition == cond {
				out = append(out, cond)
				break
			}
		}
	}
	return out
}

func withFormulation(f string) string {
	if f == "" {
		return ""
	}
	return " (" + f + ")"
}

// chartWidth widens bar charts with many bars so labels stay readable.
func chartWidth(bars int) int {
	w := 200 + 45*bars
	if w < 900 {
		return 900
	}
	if w > 2400 {
		return 2400
	}
	return w
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// slug joins the non-empty parts into a file-name-safe stem.
// Slug is the chart name made of parts (e.g. Slug(KindAccuracy, task, formulation)), as Build
// names charts (a name that collides with an earlier one gets a "-2" suffix there).
func Slug(parts ...string) string { return slug(parts...) }

func slug(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if s := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(p), "-"), "-"); s != "" {
			keep = append(keep, s)
		}
	}
	return strings.Join(keep, "-")
}

// round4 keeps the embedded JSON short and stable across platforms.
func round4(x float64) float64 {
	const s = 1e4
	if x < 0 {
		return -float64(int64(-x*s+0.5)) / s
	}
	return float64(int64(x*s+0.5)) / s
}
