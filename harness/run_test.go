package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/internal/testenv"
	"github.com/perpetual-ml/perpetual/plots"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

func TestRunCachesCellByCell(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other-model")
	if err := zoo.RandomModel(other, zootest.TinyGemma, 7); err != nil {
		t.Fatal(err)
	}
	s, err := Parse([]byte(miniSuite), "mini.yaml", dir, map[string]string{"OTHER_MODEL": other})
	if err != nil {
		t.Fatal(err)
	}
	tuner := &scaleTuner{}
	out := filepath.Join(dir, "results")
	opt := Options{Out: out, FineTuner: tuner, Charts: true, Zoo: zootest.Random{}}
	rep, err := Run(context.Background(), s, opt)
	if err != nil {
		t.Fatal(err)
	}
	// 2 models x (base + rag + 2 seeds x (finetuned + finetuned+rag)) = 12 cells.
	if rep.CellsEvaluated != 12 || rep.CellsCached != 0 || rep.FineTuned != 4 || tuner.calls != 4 ||
		rep.CurriculaBuilt != 1 || rep.IndexesBuilt != 1 || !rep.ChartsRendered {
		t.Fatalf("first run: %+v, tuner calls %d", rep, tuner.calls)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	// index.html: the tables, each formulation's charts beside them, retention and baselines.
	page, err := os.ReadFile(filepath.Join(out, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<h2>letters formulation, all questions</h2>", "<h2>cloze formulation, seen questions</h2>",
		"<h2>recall formulation (exact match), all questions</h2>", "<h2>recall formulation (contains the answer), document-only questions</h2>",
		`<iframe src="charts/accuracy-products-letters.html"`, `<iframe src="charts/delta-cloze.html"`, `<iframe src="charts/delta-recall.html"`,
		"Recall formulation: the question without its options",
		"Assistant behaviour kept after fine-tuning", "<h2>Baselines</h2>", "<td>products</td><td>gemma-tiny</td>"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	// The page renders offline in a real browser (CI installs Chromium).
	if chromium, err := plots.FindChromium(); err == nil {
		png := filepath.Join(t.TempDir(), "index.png")
		if err := plots.Screenshot(context.Background(), chromium, filepath.Join(out, IndexFile), png, 1200, 1600); err != nil {
			t.Fatal(err)
		}
		st, err := plots.InspectPNG(png)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.NotBlank(); err != nil {
			t.Errorf("index.html renders blank: %v", err)
		}
	} else if testenv.InCI() {
		t.Fatalf("Chromium is required under CI: %v", err)
	}
	// One permission policy for everything a run writes: files 0644, folders 0755.
	err = filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o644)
		if d.IsDir() {
			want = 0o755
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| Task | Model | Base | Fine-tuned | RAG | Fine-tuned + RAG | n |",
		"## letters formulation, all questions", "## cloze formulation, seen questions",
		"document-only questions", "(2 seeds)", "## Baselines", "## Letter bias", "## Leakage: products", "recall@k",
		"## Assistant behaviour kept after fine-tuning (retention)", "| products | gemma-tiny | 2 | 2 | 5.00 -> 5.50 | 1.00 -> 0.50 |",
		`- after: "Lune Lune"`, "- chart: [accuracy-products-letters](charts/accuracy-products-letters.html)",
		"- chart: [delta-cloze](charts/delta-cloze.html)", "## recall formulation (exact match), all questions",
		"## recall formulation (contains the answer), seen questions", "- chart: [delta-recall](charts/delta-recall.html)",
		"at most 24 tokens"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	// Every table row of the main section has all four conditions filled in.
	tables, _, _ := strings.Cut(string(md), "## Baselines")
	rows := 0
	for _, line := range strings.Split(tables, "\n") {
		if strings.HasPrefix(line, "| products | ") {
			rows++
			if strings.Count(line, "[") != 4 {
				t.Errorf("table row with a missing cell: %s", line)
			}
		}
	}
	if rows != (2+2)*3*2 { // (letters, cloze, recall's 2 metrics) x 3 kinds (all, document_only, seen) x 2 models
		t.Errorf("%d table rows", rows)
	}
	// The recall charts sit under its exact-match table only.
	if strings.Count(string(md), "charts/delta-recall.html") != 1 {
		t.Errorf("the recall delta chart is linked %d times", strings.Count(string(md), "charts/delta-recall.html"))
	}
	pr, err := results.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Cells) != 2*4*3 || len(pr.Loss) != 2*2*2 || len(pr.Recall) == 0 {
		t.Errorf("results.json: %d cells, %d loss points, %d recall points", len(pr.Cells), len(pr.Loss), len(pr.Recall))
	}
	for _, c := range pr.Cells {
		if c.N != 8 || c.Low > c.Acc || c.High < c.Acc {
			t.Errorf("cell %+v", c)
		}
		if c.Condition == results.Base && (c.Significant || c.DeltaVsBase != 0) {
			t.Errorf("base cell compared with itself: %+v", c)
		}
	}
	samples, err := evaluation.ReadSamples(filepath.Join(out, "samples", "products", "other", "finetuned_rag-seed2", "samples_perpetual_letters.jsonl"))
	if err != nil || len(samples) != 8 || len(samples[0].Retrieved) != 1 {
		t.Fatalf("per-sample log: %v, %d samples", err, len(samples))
	}
	// Recall: rows for both its scores in every condition, compared with base, and its log.
	recallRows := map[string]int{}
	for _, r := range rep.Results.Rows {
		if r.Formulation == evaluation.Recall && r.Kind == KindAll {
			recallRows[r.Metric+" "+r.Condition]++
			if r.N != 8 || r.Low > r.Acc || r.High < r.Acc || r.Compared != (r.Condition != results.Base) || r.Predicted != nil {
				t.Errorf("recall row %+v", r)
			}
		}
	}
	for _, metric := range []string{evaluation.MetricExactMatch, evaluation.MetricContains} {
		for _, c := range results.Conditions {
			if recallRows[metric+" "+c] != 2 { // two models
				t.Errorf("%d recall %s rows for %s", recallRows[metric+" "+c], metric, c)
			}
		}
	}
	recalled, err := evaluation.ReadSamples(filepath.Join(out, "samples", "products", "gemma-tiny", "finetuned_rag-seed2", "samples_perpetual_recall.jsonl"))
	if err != nil || len(recalled) != 8 || recalled[0].Recall == nil || len(recalled[0].Recall.TokenIDs) == 0 ||
		!strings.HasPrefix(recalled[0].Prompt, "<start_of_turn>user\n") || !strings.HasSuffix(recalled[0].Prompt, "Answer:<end_of_turn>\n<start_of_turn>model\n") ||
		len(recalled[0].Retrieved) != 1 {
		t.Fatalf("recall log: %v, %+v", err, recalled)
	}
	if _, err := os.Stat(filepath.Join(out, "charts", "accuracy-products-letters.html")); err != nil {
		t.Error(err)
	}
	// The notebook's accessors, and a cell evaluated again interactively gives the logged numbers.
	loaded, err := LoadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := loaded.Record("products", "other", results.FineTunedRAG)
	if err != nil || rec.Seed != 1 || rec.Index == "" || rec.K != 1 {
		t.Fatalf("record: %+v, %v", rec, err)
	}
	logged, err := Samples(out, rec, evaluation.Letters)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EvaluateOne(loaded, "products", "other", results.FineTunedRAG, evaluation.Letters, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Samples) != 3 || again.Samples[2].Prompt != logged[2].Prompt ||
		again.Samples[2].LogLiks[1] != logged[2].LogLiks[1] {
		t.Errorf("interactive evaluation differs from the log: %+v vs %+v", again.Samples[2], logged[2])
	}
	if _, err := loaded.Record("products", "nobody", results.Base); err == nil {
		t.Error("unknown cell: no error")
	}
	if _, err := LoadResults(filepath.Join("..", "plots", "testdata", "results")); err == nil {
		t.Error("a plots-only results.json loaded as harness results")
	}

	// Nothing changed: nothing is built, trained or evaluated, and the outputs are the same.
	before, _ := os.ReadFile(filepath.Join(out, "results.json"))
	rep, err = Run(context.Background(), s, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CellsEvaluated != 0 || rep.CellsCached != 12 || rep.FineTuned != 0 || tuner.calls != 4 ||
		rep.CurriculaBuilt != 0 || rep.IndexesBuilt != 0 || rep.ChartsRendered {
		t.Fatalf("second run did work: %+v, tuner calls %d", rep, tuner.calls)
	}
	after, _ := os.ReadFile(filepath.Join(out, "results.json"))
	if string(before) != string(after) {
		t.Error("results.json changed on a cached run")
	}

	// A cell interrupted before it finished (no cell.json) reruns alone, its requests answered by
	// its request cache.
	killed := rep.Results.Records[3]
	if err := os.Remove(filepath.Join(killed.dir, "cell.json")); err != nil {
		t.Fatal(err)
	}
	rep, err = Run(context.Background(), s, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CellsEvaluated != 1 || rep.CellsCached != 11 || rep.FineTuned != 0 {
		t.Fatalf("resumed run: %+v", rep)
	}
	for _, fr := range rep.Results.Records[3].Formulations {
		if fr.Extras.Requests == 0 || fr.Extras.CachedRequests != fr.Extras.Requests {
			t.Errorf("resumed cell scored again: %+v", fr.Extras)
		}
	}

	// Changing one model reruns only its cells (and its fine-tuning).
	if err := os.RemoveAll(other); err != nil {
		t.Fatal(err)
	}
	if err := zoo.RandomModel(other, zootest.TinyGemma, 8); err != nil {
		t.Fatal(err)
	}
	rep, err = Run(context.Background(), s, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CellsEvaluated != 6 || rep.CellsCached != 6 || rep.FineTuned != 2 || tuner.calls != 6 {
		t.Fatalf("after changing one model: %+v, tuner calls %d", rep, tuner.calls)
	}
	var res Results
	if err := readJSON(filepath.Join(out, "results.json"), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 12 || len(res.Tasks) != 1 || res.Tasks[0].Leakage.Flashcards == 0 {
		t.Errorf("results.json: %d records, tasks %+v", len(res.Records), res.Tasks)
	}
}
