package plots

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/third_party/echarts"
)

// fixture is a results folder in the harness's schema (package results) for the chart tests.
const fixture = "testdata/results"

func TestLoadFixture(t *testing.T) {
	res, err := results.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cells) != 24 || len(res.Loss) != 42 || len(res.Recall) != 20 {
		t.Fatalf("fixture: %d cells, %d loss points, %d recall points; want 24, 42, 20", len(res.Cells), len(res.Loss), len(res.Recall))
	}
	withVal := 0
	for _, p := range res.Loss {
		if p.ValLoss != nil {
			withVal++
		}
	}
	if withVal != 10 {
		t.Errorf("%d loss points carry val_loss, want 10", withVal)
	}
	sig := 0
	for _, c := range res.Cells {
		if c.Significant {
			sig++
		}
	}
	if sig == 0 || sig == len(res.Cells) {
		t.Errorf("fixture should mix significant and not significant cells, got %d of %d", sig, len(res.Cells))
	}
}

func loadFixture(t *testing.T) *results.Summary {
	t.Helper()
	res, err := results.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestBuildMakesEveryChart(t *testing.T) {
	var names []string
	for _, c := range Build(loadFixture(t)) {
		names = append(names, c.Name)
		if c.Width < 900 || c.Height < 400 || c.Title == "" {
			t.Errorf("%s: size %dx%d, title %q", c.Name, c.Width, c.Height, c.Title)
		}
	}
	want := "accuracy-papers-letters accuracy-products-cloze accuracy-products-letters delta-cloze delta-letters loss-products recall-papers recall-products"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("charts:\n got %s\nwant %s", got, want)
	}
}

func TestBuildNumbersCollidingNames(t *testing.T) {
	res := &results.Summary{Recall: []results.RecallPoint{
		{Task: "a b", Retriever: "r", K: 1, Recall: 0.5},
		{Task: "a-b", Retriever: "r", K: 1, Recall: 0.5},
	}}
	chs := Build(res)
	if len(chs) != 2 || chs[0].Name != "recall-a-b" || chs[1].Name != "recall-a-b-2" {
		t.Fatalf("names: %v, %v", chs[0].Name, chs[1].Name)
	}
}

func chartByName(t *testing.T, res *results.Summary, name string) *Chart {
	t.Helper()
	for _, c := range Build(res) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no chart %s", name)
	return nil
}

func TestHTMLUsesLocalAssetAndCarriesData(t *testing.T) {
	res := loadFixture(t)
	for _, c := range Build(res) {
		page, err := c.HTML()
		if err != nil {
			t.Fatal(err)
		}
		s := string(page)
		if !strings.Contains(s, `<script src="assets/echarts.min.js"></script>`) {
			t.Errorf("%s: no local echarts script tag", c.Name)
		}
		for _, bad := range []string{"https://", "http://", "ZgotmplZ", "__f__"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s: page contains %q", c.Name, bad)
			}
		}
		if !strings.Contains(s, `"animation":false`) {
			t.Errorf("%s: animation not disabled (screenshots would catch a half-drawn frame)", c.Name)
		}
	}
	// The accuracy chart carries the bars, the whiskers (interval ends) and the error-bar renderer.
	acc, err := chartByName(t, res, "accuracy-products-letters").HTML()
	if err != nil {
		t.Fatal(err)
	}
	var cell results.Cell
	for _, c := range res.Cells {
		if c.Task == "products" && c.Model == "mamba-tiny" && c.Condition == results.RAG && c.Formulation == "letters" {
			cell = c
		}
	}
	for _, want := range []string{`"type":"custom"`, "api.barLayout", `"name":"finetuned+rag"`,
		fmtFloat(cell.Acc), fmtFloat(cell.Low), fmtFloat(cell.High), "n=120"} {
		if !bytes.Contains(acc, []byte(want)) {
			t.Errorf("accuracy chart lacks %q", want)
		}
	}
	// The delta chart marks significant differences only.
	delta, err := chartByName(t, res, "delta-letters").HTML()
	if err != nil {
		t.Fatal(err)
	}
	stars := strings.Count(string(delta), `"formatter":"*"`)
	sig := 0
	for _, c := range res.Cells {
		if c.Formulation == "letters" && c.Significant {
			sig++
		}
	}
	if stars != sig {
		t.Errorf("delta chart: %d significance marks, %d significant cells", stars, sig)
	}
	// Validation loss is drawn dashed.
	loss, err := chartByName(t, res, "loss-products").HTML()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(loss, []byte(`"name":"gemma-tiny val"`)) || !bytes.Contains(loss, []byte(`"type":"dashed"`)) {
		t.Error("loss chart lacks the dashed validation series")
	}
}

// fmtFloat spells x the way encoding/json does in the page.
func fmtFloat(x float64) string { return strconv.FormatFloat(round4(x), 'f', -1, 64) }

func TestWriteAssetsCopiesEmbeddedScript(t *testing.T) {
	dir := t.TempDir()
	if err := WriteAssets(dir); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, AssetsDir, echarts.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, echarts.MinJS) || len(got) < 500_000 || !bytes.Contains(got, []byte(echarts.Version)) {
		t.Fatalf("assets copy: %d bytes, identical=%v", len(got), bytes.Equal(got, echarts.MinJS))
	}
}

func TestNotebookHTML(t *testing.T) {
	c := chartByName(t, loadFixture(t), "recall-products")
	a, err := c.NotebookHTML()
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.NotebookHTML()
	if err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`id="([A-Za-z0-9_]+)"`)
	ma, mb := id.FindStringSubmatch(a), id.FindStringSubmatch(b)
	if ma == nil || mb == nil || ma[1] == mb[1] {
		t.Fatalf("notebook fragments need distinct element ids: %v %v", ma, mb)
	}
	if strings.Contains(a, "<script src") || !strings.Contains(a, "echarts.init(document.getElementById('"+ma[1]+"')") {
		t.Fatalf("fragment should draw into its own div without loading scripts:\n%s", a)
	}
	s := NotebookScript()
	if !strings.HasPrefix(s, "<script") || !strings.Contains(s, string(echarts.MinJS[:200])) {
		t.Fatal("NotebookScript does not inline echarts")
	}
}

// A model evaluated under fewer conditions leaves a gap ("-") in its group and no whisker, while
// the whiskers of the other bars keep their series index and count.
func TestAccuracyChartWithMissingCell(t *testing.T) {
	cells := []results.Cell{
		{Task: "t", Model: "a", Condition: results.Base, Acc: 0.3, Low: 0.2, High: 0.4, N: 50},
		{Task: "t", Model: "a", Condition: results.RAG, Acc: 0.6, Low: 0.5, High: 0.7, N: 50, DeltaVsBase: 0.3, Significant: true},
		{Task: "t", Model: "b", Condition: results.Base, Acc: 0.35, Low: 0.25, High: 0.45, N: 50},
	}
	chs := AccuracyCharts(cells)
	if len(chs) != 1 || chs[0].Name != "accuracy-t" {
		t.Fatalf("charts: %+v", chs)
	}
	page, err := chs[0].HTML()
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, want := range []string{`"value":"-"`, `"value":[0,0.5,0.7,1,2]`, `"value":[1,0.25,0.45,0,2]`} {
		if !strings.Contains(s, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Count(s, `"value":[`) != 3 {
		t.Errorf("want 3 whiskers, page has %d", strings.Count(s, `"value":[`))
	}
}

// A learning curve is one chart per model with a line per probe carrying its points; bad
// points are refused with the item named.
func TestCurveCharts(t *testing.T) {
	res := &results.Summary{Curves: []results.CurvePoint{
		{Model: "gemma-tiny", Probe: "read_cloze", Step: 100, Value: 0.25},
		{Model: "gemma-tiny", Probe: "read_cloze", Step: 200, Value: 0.61},
		{Model: "gemma-tiny", Probe: "book_cloze", Step: 100, Value: 0.3},
		{Model: "mamba-tiny", Probe: "read_cloze", Step: 100, Value: 0.27},
	}}
	if err := res.Validate(); err != nil {
		t.Fatal(err)
	}
	chs := Build(res)
	if len(chs) != 2 || chs[0].Name != "curve-gemma-tiny" || chs[1].Name != "curve-mamba-tiny" {
		t.Fatalf("charts %v", chs)
	}
	page, err := chs[0].HTML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"read_cloze"`, `"book_cloze"`, `[200,0.61]`} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("page lacks %s", want)
		}
	}
	bad := &results.Summary{Curves: []results.CurvePoint{{Model: "m", Probe: "p", Step: -1}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "curves[0]") {
		t.Fatalf("negative step: %v", err)
	}
	if _, err := results.Read(strings.NewReader(`{"curves": [{"model": "m", "probe": "p", "step": 1, "value": 0.5}]}`), "c.json"); err != nil {
		t.Fatalf("a curves-only file: %v", err)
	}
}

// The gain-versus-retention chart puts every fine-tuning at (perplexity after / before, gain
// over base), one series per model; bad retention values are refused.
func TestGainRetentionCharts(t *testing.T) {
	res := &results.Summary{
		Cells: []results.Cell{
			{Task: "products", Model: "g", Condition: results.Base, Formulation: "cloze", Acc: 0.25, Low: 0.2, High: 0.3, N: 100},
			{Task: "products", Model: "g", Condition: results.FineTuned, Formulation: "cloze", Acc: 0.45, Low: 0.4, High: 0.5, N: 100, DeltaVsBase: 0.2},
			{Task: "research", Model: "m", Condition: results.FineTuned, Formulation: "cloze", Acc: 0.3, Low: 0.2, High: 0.4, N: 100, DeltaVsBase: 0.05},
		},
		Retention: []results.RetentionPoint{
			{Task: "products", Model: "g", Seed: 1, Retention: results.Retention{PerplexityBefore: 10, PerplexityAfter: 15, StopRateBefore: 1, StopRateAfter: 1}},
			{Task: "research", Model: "m", Seed: 1, Retention: results.Retention{PerplexityBefore: 20, PerplexityAfter: 20, StopRateBefore: 1, StopRateAfter: 0.5}},
		},
	}
	if err := res.Validate(); err != nil {
		t.Fatal(err)
	}
	ch := chartByName(t, res, "gain-retention-cloze")
	page, err := ch.HTML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`[1.5,0.2]`, `[1,0.05]`, `"name":"g"`, `"name":"m"`} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("page lacks %s", want)
		}
	}
	res.Retention[0].PerplexityAfter = 0.5
	if err := res.Validate(); err == nil || !strings.Contains(err.Error(), "retention[0]") {
		t.Fatalf("perplexity below 1: %v", err)
	}
}
