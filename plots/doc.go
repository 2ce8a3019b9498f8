// Package plots turns results into charts: accuracy by condition with 95% error bars, accuracy
// delta versus base, training loss curves, retrieval recall@k, learning curves and gain against
// retention.
//
// Charts are built with github.com/go-echarts/go-echarts/v2 (the Go binding of Apache ECharts:
// interactive HTML from Go values, no JavaScript toolchain needed) and written as HTML pages that
// load echarts.min.js from an "assets" folder copied next to them (the vendored copy in
// third_party/echarts), so they work offline. PNG images are screenshots of those pages taken by a
// headless Chromium (Debian's chromium package) driven through github.com/chromedp/chromedp, which
// keeps one browser open for all charts; the pages people open are the ones photographed, so the
// two never disagree. Notebooks display the charts inline through
// NotebookHTML, which inlines the script instead of pointing at a folder.
//
// plots defines no data of its own: it renders the results.Summary it is handed (package
// harness/results owns results.json's schema and reads it with results.Load); the harness writes
// that file, tests and notebooks use the fixture in plots/testdata/results.
package plots
