package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/plots"
)

// SamplesDir is where a cell's per-sample logs go inside a results folder.
func SamplesDir(out string, rec *CellRecord) string {
	name := rec.Condition
	if rec.Seed != 0 {
		name = fmt.Sprintf("%s-seed%d", rec.Condition, rec.Seed)
	}
	return filepath.Join(out, "samples", rec.Task, rec.Model, strings.ReplaceAll(name, "+", "_"))
}

// writeOutputs writes results.json, results.md, the per-sample logs and the charts, three timed
// steps: results.json with the logs (and the results built before it), the charts, the pages.
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
	r.watch.lap(TimedStep{Kind: StepReport, Name: "results.json and samples"})
	charts, err := r.renderCharts()
	if err != nil {
		return err
	}
	if r.opt.Charts {
		r.watch.lap(TimedStep{Kind: StepReport, Name: "charts", Cached: !r.rep.ChartsRendered})
	}
	if err := writeAtomic(filepath.Join(out, "results.md"), []byte(MarkdownWithCharts(res, charts))); err != nil {
		return err
	}
	page, err := IndexHTML(res, charts)
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(out, IndexFile), page); err != nil {
		return err
	}
	r.watch.lap(TimedStep{Kind: StepReport, Name: "results.md and index.html"})
	return nil
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
