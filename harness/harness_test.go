package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/perpetual-ml/perpetual/internal/testenv"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/plots"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

// scaleTuner is a FineTuner test double: it "trains" by scaling every weight of the base model by
// (1 + 0.05*seed), so fine-tuned models differ from their base and from each other by seed, and
// counts its calls so tests can check what was (not) retrained.
type scaleTuner struct {
	mu    sync.Mutex
	calls int
}

func (s *scaleTuner) Version() string { return "scale-v1" }

func (s *scaleTuner) FineTune(_ context.Context, req FineTuneRequest) (*FineTuneResult, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	m, err := lm.Load(req.BaseModel, lm.LoadOptions{})
	if err != nil {
		return nil, err
	}
	factor := float32(1 + 0.05*float64(req.Seed))
	w := map[string]*tensors.Tensor{}
	for name, t := range m.Weights() {
		data := tensors.MustCopyFlatData[float32](t)
		for i := range data {
			data[i] *= factor
		}
		w[name] = tensors.FromFlatDataAndDimensions(data, t.Shape().Dimensions...)
	}
	if err := m.SetWeights(w); err != nil {
		return nil, err
	}
	if err := m.Save(req.Out, checkpoint.SaveOptions{TokenizerFrom: req.BaseModel}); err != nil {
		return nil, err
	}
	var loss []LossStep
	for step := 1; step <= req.Recipe.Epochs; step++ {
		loss = append(loss, LossStep{Step: step, Loss: float64(factor) / float64(step)})
	}
	ret := &results.Retention{Prompts: 2, PerplexityBefore: 5, PerplexityAfter: 5 * float64(factor), StopRateBefore: 1, StopRateAfter: 0.5,
		Prompt: "Name a river.", SampleBefore: "The Lune.", SampleAfter: "Lune Lune"}
	return &FineTuneResult{Loss: loss, Retention: ret}, nil
}

const miniSuite = `
name: mini
tasks:
  - name: products
    synthetic: {kind: products, seed: 3, chunks: 6, facts_per_chunk: 2}
    rag: {k: 1}
models:
  - name: gemma-tiny
    path: zoo:gemma-tiny
    chat_template: "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
  - name: other
    path: ${OTHER_MODEL}
formulations: [letters, cloze, recall]
training: {epochs: 2, lr: 0.001}
seeds: [1, 2]
eval: {batch_size: 16, bootstrap: 200, limit: 8}
`

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

func TestRunWithoutFineTunerFailsClearly(t *testing.T) {
	dir := t.TempDir()
	s, err := Parse([]byte(strings.Replace(miniSuite, "  - name: other\n    path: ${OTHER_MODEL}\n", "", 1)), "mini.yaml", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Conditions = []string{results.FineTuned}
	_, err = Run(context.Background(), s, Options{Out: filepath.Join(dir, "out"), Zoo: zootest.Random{}})
	if err == nil || !strings.Contains(err.Error(), "no fine-tuner") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("work was done before failing")
	}
}

func TestSuiteErrors(t *testing.T) {
	base := "name: x\ntasks:\n  - name: t\n    synthetic: {kind: products, seed: 1}\nmodels:\n  - name: m\n    path: zoo:gemma-tiny\n"
	for _, tc := range []struct{ yaml, want string }{
		{"tasks: []\n", "name is required"},
		{base + "conditions: [zero-shot]\n", `condition "zero-shot"`},
		{base + "formulations: [essay]\n", `formulation "essay"`},
		{base + "formulations: [recall, letters, recall]\n", `formulation "recall" is listed twice`},
		{base + "colour: red\n", "field colour not found"},
		{strings.Replace(base, "synthetic: {kind: products, seed: 1}", "perpetual: ${NO_SUCH_VAR_X}/p", 1), "NO_SUCH_VAR_X"},
		{strings.Replace(base, "synthetic: {kind: products, seed: 1}", "synthetic: {kind: poems}", 1), `kind "poems"`},
		{strings.Replace(base, "    synthetic:", "    curriculum: c\n    synthetic:", 1), "exactly one of"},
		{strings.Replace(base, "name: m", "name: my model", 1), "not a plain word"},
		{base + "    chat_template: 'no placeholder'\n", "no {prompt}"},
		{base + "    prompt_format: limerick\n", "limerick"},
		{base + "eval: {dtype: float8}\n", "eval dtype"},
		{base + "eval: {max_length: -1}\n", "max_length -1 is negative"},
		{base + "eval: {add_bos_token: maybe}\n", `add_bos_token "maybe"`},
		{strings.Replace(base, "seed: 1}", "seed: 1}\n    template: {strip: true}", 1), "field strip not found"},
		{base + "    prompt_format: gemma\n    chat_template: '{prompt}'\n", "not both"},
		{strings.Replace(base, "seed: 1}", "seed: 1}\n    rag: {retriever: dense}", 1), "needs rag.embedder"},
		{strings.Replace(base, "seed: 1}", "seed: 1}\n    rag: {retriever: tfidf}", 1), `retriever "tfidf"`},
	} {
		_, err := Parse([]byte(tc.yaml), "s.yaml", t.TempDir(), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "s.yaml") {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestEmbeddedSuites(t *testing.T) {
	s, err := Load("default", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tasks) != 3 || len(s.Models) != 2 || !strings.HasPrefix(s.Models[0].Path, ZooPrefix) ||
		s.Models[0].ChatTemplate != "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n" ||
		!strings.Contains(s.Models[1].ChatTemplate, "### Instruction:\n{prompt}\n\n### Response:\n") ||
		!slices.Equal(s.Formulations, []string{evaluation.Letters, evaluation.Cloze, evaluation.Recall}) {
		t.Errorf("default suite: %+v", s)
	}
	for _, v := range []string{"PERPETUAL_DATA", "GEMMA_2B_IT", "MAMBA_2_8B"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	if _, err := Load("paper", nil); err == nil || !strings.Contains(err.Error(), "PERPETUAL_DATA") {
		t.Errorf("paper without data: err = %v", err)
	}
	vars := map[string]string{"PERPETUAL_DATA": "/data", "GEMMA_2B_IT": "/models/gemma", "MAMBA_2_8B": "/models/mamba"}
	p, err := Load("paper", vars)
	if err != nil {
		t.Fatal(err)
	}
	if p.Tasks[0].Perpetual != "/data/products" || p.Models[0].Path != "/models/gemma" || len(p.Seeds) != 3 {
		t.Errorf("paper suite: %+v", p)
	}
	// The paper's rendering for both tasks ({{question.strip()}}, passages stripped and joined by
	// "\n"); the default suite keeps the embedded tasks' rendering its zoo was trained on.
	for _, task := range p.Tasks {
		o := p.taskOptions(task)
		if !o.StripQuestion || !o.StripPassages || o.PassageDelimiter == nil || *o.PassageDelimiter != "\n" || o.ChatTargetDelimiter != nil {
			t.Errorf("paper task %s: template %+v", task.Name, o)
		}
	}
	for _, task := range s.Tasks {
		if o := s.taskOptions(task); !o.IsZero() || s.Eval.EncodingOptions != (evaluation.EncodingOptions{}) {
			t.Errorf("default task %s: template %+v, encoding %+v", task.Name, o, s.Eval.EncodingOptions)
		}
	}
	// eval: settings; a YAML boolean is a valid add_bos_token, and a task's own chat delimiter wins.
	withEval := "name: e\ntasks:\n  - name: t\n    synthetic: {kind: products, seed: 1}\n  - name: u\n    synthetic: {kind: code, seed: 1}\n    template: {chat_target_delimiter: \" \"}\n" +
		"models:\n  - name: m\n    path: zoo:gemma-tiny\neval: {max_length: 4096, add_bos_token: true, chat_target_delimiter: \"\"}\n"
	e, err := Parse([]byte(withEval), "e.yaml", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Eval.MaxLength != 4096 || e.Eval.AddBOS != evaluation.BOSTrue || *e.taskOptions(e.Tasks[0]).ChatTargetDelimiter != "" || *e.taskOptions(e.Tasks[1]).ChatTargetDelimiter != " " {
		t.Errorf("eval settings %+v, task options %+v %+v", e.Eval, e.taskOptions(e.Tasks[0]), e.taskOptions(e.Tasks[1]))
	}
	// A file on disk wins over the embedded name.
	file := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(file, []byte("name: mine\ntasks:\n  - name: t\n    curriculum: cur\nmodels:\n  - name: m\n    path: ./model\n"), 0o644)
	f, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "mine" || f.Tasks[0].Curriculum != filepath.Join(filepath.Dir(file), "cur") || f.Models[0].Path != filepath.Join(filepath.Dir(file), "model") {
		t.Errorf("relative paths: %+v", f)
	}
	if _, err := Load("nonesuch", nil); err == nil || !strings.Contains(err.Error(), "generalise") {
		t.Errorf("unknown suite: %v (want the embedded names listed)", err)
	}
	// The generalisation suite draws every knowledge base with another seed and size than the
	// default's, for the same models.
	g, err := Load("generalise", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, task := range g.Tasks {
		d := s.Tasks[i].Synthetic
		if task.Synthetic == nil || d == nil || task.Synthetic.Kind != d.Kind || task.Synthetic.Seed == d.Seed ||
			(task.Synthetic.Chunks == d.Chunks && task.Synthetic.FactsPerChunk == d.FactsPerChunk) {
			t.Errorf("generalise task %s: %+v against the default's %+v", task.Name, task.Synthetic, d)
		}
	}
	if len(g.Models) != len(s.Models) || g.Models[0].Path != s.Models[0].Path || g.Models[1].Path != s.Models[1].Path {
		t.Errorf("generalise models %+v", g.Models)
	}
}

// countingZoo is a Zoo test double that writes a config.json and counts its builds.
type countingZoo struct{ builds int }

func (z *countingZoo) Resolve(name, cacheDir string) (string, error) {
	z.builds++
	d := filepath.Join(cacheDir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	return d, os.WriteFile(filepath.Join(d, "config.json"), []byte("{}"), 0o644)
}

func TestResolveModel(t *testing.T) {
	dir := t.TempDir()
	if _, err := ResolveModel("zoo:nonesuch", dir, zootest.Random{}); err == nil || !strings.Contains(err.Error(), "gemma-tiny") {
		t.Errorf("unknown zoo entry: %v", err)
	}
	if _, err := ResolveModel("zoo:gemma-tiny", dir, nil); err == nil || !strings.Contains(err.Error(), "Options.Zoo") {
		t.Errorf("no zoo: %v", err)
	}
	if _, err := ResolveModel(filepath.Join(dir, "missing"), dir, zootest.Random{}); err == nil {
		t.Error("missing folder: no error")
	}
	z := &countingZoo{}
	got, err := ResolveModel("zoo:test-copy", dir, z)
	if err != nil || got != filepath.Join(dir, "test-copy") || z.builds != 1 {
		t.Fatalf("resolve: %q, %v, %d builds", got, err, z.builds)
	}
	// A folder path never reaches the zoo.
	if _, err := ResolveModel(got, dir, z); err != nil || z.builds != 1 {
		t.Fatalf("folder: %v, %d builds", err, z.builds)
	}
	// The random-init stand-ins give loadable models whose tokenizer covers the chat markers.
	m, enc, err := LoadForEval(mustResolve(t, dir), lm.LoadOptions{}, evaluation.EncodingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if enc.MaxLength != m.Arch().MaxLength() || enc.MaxLength == 0 {
		t.Errorf("gemma window %d, model's %d", enc.MaxLength, m.Arch().MaxLength())
	}
	ids := enc.Tokenizer.Encode("<start_of_turn>user\nHello<end_of_turn>")
	if m.Arch().VocabSize() != 512 || len(ids) == 0 || ids[0] != 4 || !enc.AddBOS {
		t.Errorf("random model: vocab %d, ids %v, addBOS %v", m.Arch().VocabSize(), ids, enc.AddBOS)
	}
	mambaDir, err := ResolveModel("zoo:mamba-tiny", dir, zootest.Random{})
	if err != nil {
		t.Fatal(err)
	}
	mm, menc, err := LoadForEval(mambaDir, lm.LoadOptions{}, evaluation.EncodingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Mamba reads any length, but lm-eval truncates its requests to 2048 (+1) tokens all the same.
	if mm.Arch().Family() != "mamba" || menc.AddBOS || mm.Arch().MaxLength() != 0 || menc.MaxLength != evaluation.DefaultMaxLength {
		t.Errorf("mamba-tiny: family %s, addBOS %v, window %d, evaluation max_length %d", mm.Arch().Family(), menc.AddBOS, mm.Arch().MaxLength(), menc.MaxLength)
	}
	// lm-eval's max_length and add_bos_token model arguments win over the model's.
	if _, menc, err = LoadForEval(mambaDir, lm.LoadOptions{}, evaluation.EncodingOptions{MaxLength: 4096, AddBOS: evaluation.BOSTrue}); err != nil || menc.MaxLength != 4096 || !menc.AddBOS {
		t.Errorf("mamba-tiny with options: %+v, %v", menc, err)
	}
	if _, _, err := LoadForEval(mustResolve(t, dir), lm.LoadOptions{}, evaluation.EncodingOptions{MaxLength: 1 << 20}); err == nil || !strings.Contains(err.Error(), "max_length") {
		t.Errorf("max_length over the Gemma window: %v", err)
	}
	raw, _ := os.ReadFile(filepath.Join(mustResolve(t, dir), "config.json"))
	var cfg map[string]any
	if json.Unmarshal(raw, &cfg) != nil || cfg["model_type"] != "gemma" {
		t.Errorf("config: %s", raw)
	}
}

func mustResolve(t *testing.T, dir string) string {
	t.Helper()
	got, err := ResolveModel("zoo:gemma-tiny", dir, zootest.Random{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// perpetualData is the study's data, beside the repository (../shared from the repository root).
var perpetualData = filepath.Join("..", "..", "shared", "datasets", "perpetual")

func TestPerpetualTask(t *testing.T) {
	testenv.File(t, "the Perpetual reference data", filepath.Join(perpetualData, "products", "test.json"))
	dir := t.TempDir()
	suite := `
name: perpetual-mini
tasks:
  - name: products
    perpetual: ${DATA}/products
models:
  - name: tiny
    path: zoo:gemma-tiny
    prompt_format: alpaca
conditions: [base]
formulations: [letters]
eval: {limit: 4}
`
	abs, _ := filepath.Abs(perpetualData)
	s, err := Parse([]byte(suite), "perpetual-mini", dir, map[string]string{"DATA": abs})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), s, Options{Out: filepath.Join(dir, "out"), Zoo: zootest.Random{}})
	if err != nil {
		t.Fatal(err)
	}
	info := rep.Results.Tasks[0]
	// The known properties of this data show up in the report: 2,391 questions, B the most
	// frequent answer (always-B about 0.40), test questions found among the flashcards.
	if info.Counts.Test != 2391 || info.Baselines.Always["B"] < 0.39 || info.Leakage.All.Near == 0 || rep.Results.Cells[0].N != 4 {
		t.Errorf("products: counts %+v, always-B %.3f, leakage %+v, cell %+v", info.Counts, info.Baselines.Always["B"], info.Leakage.All, rep.Results.Cells[0])
	}
}

// Issue 16's evaluation options: lm-eval's chat delimiter, the paper's rendering, max_length and
// add_bos_token reach every cell, rerun it, and EvaluateOne reproduces it; without them the cell
// keys are what they were, so cached cells stay valid, except where the window rule changed
// (Mamba now reads at most 2048 tokens, as lm-eval's HFLM).
func TestSuiteEvalOptions(t *testing.T) {
	dir := t.TempDir()
	const suite = `
name: options
tasks:
  - name: products
    synthetic: {kind: products, seed: 3, chunks: 6, facts_per_chunk: 2}
    rag: {k: 2}
models:
  - name: gemma-tiny
    path: zoo:gemma-tiny
    prompt_format: gemma
  - name: mamba-tiny
    path: zoo:mamba-tiny
conditions: [base, rag]
formulations: [letters]
eval: {batch_size: 16, bootstrap: 100, limit: 3}
`
	opt := Options{Out: filepath.Join(dir, "results"), Work: filepath.Join(dir, "work"), Zoo: zootest.Random{}}
	run := func(yml string, wantEvaluated int) *Report {
		t.Helper()
		s, err := Parse([]byte(yml), "options.yaml", dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), s, opt)
		if err != nil {
			t.Fatal(err)
		}
		if rep.CellsEvaluated != wantEvaluated || rep.CellsCached != 4-wantEvaluated {
			t.Fatalf("%d cells evaluated, %d cached; want %d evaluated", rep.CellsEvaluated, rep.CellsCached, wantEvaluated)
		}
		return rep
	}
	record := func(rep *Report, model, cond string) (*CellRecord, []evaluation.Sample) {
		t.Helper()
		rec, err := rep.Results.Record("products", model, cond)
		if err != nil {
			t.Fatal(err)
		}
		samples, err := Samples(opt.Out, rec, evaluation.Letters)
		if err != nil {
			t.Fatal(err)
		}
		return rec, samples
	}
	rep := run(suite, 4)
	gemma, gs := record(rep, "gemma-tiny", results.RAG)
	mamba, ms := record(rep, "mamba-tiny", results.Base)
	// Gemma: its own window and BOS, as before.
	if gemma.MaxLength != zootest.TinyGemma["max_position_embeddings"] || !gemma.AddBOS || gemma.Key == "" {
		t.Errorf("gemma cell: max_length %d, BOS %v", gemma.MaxLength, gemma.AddBOS)
	}
	if len(gs[0].ContextTokenIDs) == 0 || gs[0].ContextTokenIDs[0] != 2 || len(gs[0].ContinuationTokenIDs) != 4 || gs[0].Args[0][1] != " A" {
		t.Errorf("gemma sample: context ids %v, continuation ids %v, arguments %q", gs[0].ContextTokenIDs, gs[0].ContinuationTokenIDs, gs[0].Args[0])
	}
	// Mamba: lm-eval's 2048 (the stand-in's tokenizer_config.json sets no model_max_length).
	if mamba.MaxLength != evaluation.DefaultMaxLength || mamba.AddBOS {
		t.Errorf("mamba cell: max_length %d, BOS %v", mamba.MaxLength, mamba.AddBOS)
	}
	if !strings.HasPrefix(ms[0].Prompt, ms[0].Doc.Question) {
		t.Errorf("mamba prompt %q", ms[0].Prompt)
	}
	enc, changed, err := evalEncoding(gemma.ModelDir, evaluation.EncodingOptions{})
	if err != nil || changed || enc.MaxLength != gemma.MaxLength {
		t.Errorf("gemma encoding %+v changed %v, %v", enc, changed, err)
	}
	if _, changed, err := evalEncoding(mamba.ModelDir, evaluation.EncodingOptions{}); err != nil || !changed {
		t.Errorf("mamba's window changed from unbounded to 2048 but its cells would be reused (%v)", err)
	}

	// lm-eval's apply_chat_template delimiter: the bare letter after the model turn, for the model
	// with a chat template; the other model's prompts are unchanged, but the option is in the key.
	rep = run(strings.Replace(suite, "limit: 3}", "limit: 3, chat_target_delimiter: \"\"}", 1), 4)
	gemma, gs = record(rep, "gemma-tiny", results.RAG)
	if gs[0].Args[0][1] != "A" || len(gs[0].ContinuationTokenIDs[0]) != 2 { // "\n" "A"
		t.Errorf("lm-eval chat delimiter: arguments %q, continuation ids %v", gs[0].Args[0], gs[0].ContinuationTokenIDs[0])
	}
	loaded, err := LoadResults(opt.Out)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EvaluateOne(loaded, "products", "gemma-tiny", results.RAG, evaluation.Letters, 1, nil)
	if err != nil || again.Samples[0].Args[0][1] != "A" || !nearlyEqual(again.Samples[0].LogLiks[0], gs[0].LogLiks[0]) {
		t.Errorf("EvaluateOne does not reproduce the cell: %v %+v", err, again)
	}

	// The paper's rendering, per task: stripped passages joined by one newline.
	paper := strings.Replace(suite, "rag: {k: 2}", `rag: {k: 2}
    template: {strip_question: true, strip_passages: true, passage_delimiter: "\n"}`, 1)
	rep = run(paper, 4)
	_, gs = record(rep, "gemma-tiny", results.RAG)
	two := slices.IndexFunc(gs, func(x evaluation.Sample) bool { return len(x.Retrieved) == 2 })
	if two < 0 {
		t.Fatal("no question retrieved two passages")
	}
	if p := gs[two].Prompt; strings.Count(p, "\n\n") != 1 || !strings.Contains(p, "\n\n"+gs[two].Doc.Question+"\nA.") {
		t.Errorf("paper rendering: passages should be joined by one newline, then a blank line before the question: %q", p)
	}
	again, err = EvaluateOne(mustLoadResults(t, opt.Out), "products", "gemma-tiny", results.RAG, evaluation.Letters, 1, nil)
	if err != nil || again.Samples[0].Prompt != gs[0].Prompt {
		t.Errorf("EvaluateOne does not reproduce the paper rendering: %v", err)
	}
	rep = run(paper, 0) // and it is cached like any other setting

	// max_length and add_bos_token.
	rep = run(strings.Replace(suite, "limit: 3}", "limit: 3, max_length: 24, add_bos_token: false}", 1), 4)
	gemma, gs = record(rep, "gemma-tiny", results.Base)
	if gemma.MaxLength != 24 || gemma.AddBOS || gs[0].TruncatedTokens == 0 || gs[0].ContextTokenIDs[0] == 2 {
		t.Errorf("max_length 24, no BOS: cell %d %v, sample truncated %d, context %v", gemma.MaxLength, gemma.AddBOS, gs[0].TruncatedTokens, gs[0].ContextTokenIDs)
	}
	again, err = EvaluateOne(mustLoadResults(t, opt.Out), "products", "gemma-tiny", results.Base, evaluation.Letters, 1, nil)
	if err != nil || again.Samples[0].TruncatedTokens != gs[0].TruncatedTokens || !nearlyEqual(again.Samples[0].LogLiks[0], gs[0].LogLiks[0]) {
		t.Errorf("EvaluateOne does not reproduce max_length/add_bos_token: %v, %+v vs %+v", err, again.Samples[0], gs[0])
	}
	// Back to the defaults: the first run's cells are still valid.
	run(suite, 0)
}

// Without issue 16's options, and with the window and BOS the harness used before, a cell's key
// is what harness-v1 computed: cached cells stay valid.
func TestCellKeyUnchangedWithoutOptions(t *testing.T) {
	parts := []any{"cell", "products", "gemma-tiny", "", results.Base, int64(0), "hash", "cur", "", 0, []string{"letters"}, EvalSettings{BatchSize: 8}, ""}
	legacy := keyOf(parts...)
	// The eval settings hash as before when the new fields are unset.
	if b, _ := json.Marshal(EvalSettings{BatchSize: 16, Bootstrap: 2000}); string(b) != `{"batch_size":16,"limit":0,"bootstrap":2000}` {
		t.Errorf("eval settings JSON changed: %s", b)
	}
	if got := cellKey(slices.Clone(parts), evaluation.TaskOptions{}, encodingInfo{enc: evaluation.Encoding{MaxLength: 1024}}); got != legacy {
		t.Errorf("key without options %s, harness-v1 %s", got, legacy)
	}
	empty := ""
	for name, k := range map[string]string{
		"chat_target_delimiter": cellKey(slices.Clone(parts), evaluation.TaskOptions{ChatTargetDelimiter: &empty}, encodingInfo{}),
		"strip_question":        cellKey(slices.Clone(parts), evaluation.TaskOptions{StripQuestion: true}, encodingInfo{}),
		"window":                cellKey(slices.Clone(parts), evaluation.TaskOptions{}, encodingInfo{enc: evaluation.Encoding{MaxLength: 2048}, changed: true}),
		"eval settings":         keyOf(append(slices.Clone(parts[:11]), EvalSettings{BatchSize: 8, EncodingOptions: evaluation.EncodingOptions{MaxLength: 64}}, "")...),
	} {
		if k == legacy {
			t.Errorf("%s does not change the cell key", name)
		}
	}
}

// nearlyEqual compares log-likelihoods computed at different batch sizes (EvaluateOne uses 8).
func nearlyEqual(a, b float64) bool { return math.Abs(a-b) <= 1e-5*math.Abs(b) }

func mustLoadResults(t *testing.T, dir string) *Results {
	t.Helper()
	r, err := LoadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// refusingTuner is a FineTuner whose ValidateRecipe refuses every recipe.
type refusingTuner struct{ scaleTuner }

func (*refusingTuner) ValidateRecipe(r Recipe) error { return fmt.Errorf("unknown key %q", "warmpu") }

// A recipe the fine-tuner refuses stops the run before any work (no curriculum, no cell).
func TestRecipeRefusedBeforeWork(t *testing.T) {
	dir := t.TempDir()
	s, err := Parse([]byte(miniSuite), "mini.yaml", dir, map[string]string{"OTHER_MODEL": dir})
	if err != nil {
		t.Fatal(err)
	}
	tuner := &refusingTuner{}
	out := filepath.Join(dir, "out")
	_, err = Run(context.Background(), s, Options{Out: out, FineTuner: tuner, Zoo: zootest.Random{}})
	if err == nil || !strings.Contains(err.Error(), "training") || !strings.Contains(err.Error(), "warmpu") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "cache", "curricula")); err == nil || tuner.calls != 0 {
		t.Fatalf("work was done before the recipe was refused (fine-tunings %d)", tuner.calls)
	}
}

// The recall formulation in cells: adding it to a suite evaluates the cells again (the key names
// the formulations and the recall task), a cached cell.json that lacks it is evaluated again
// rather than reported with a hole, and EvaluateOne reproduces a logged answer.
func TestRecallInCells(t *testing.T) {
	dir := t.TempDir()
	const suite = `
name: recall
tasks:
  - name: products
    synthetic: {kind: products, seed: 3, chunks: 6, facts_per_chunk: 2}
    rag: {k: 1}
models:
  - name: gemma-tiny
    path: zoo:gemma-tiny
    prompt_format: gemma
conditions: [base, rag]
formulations: [letters]
eval: {batch_size: 16, bootstrap: 100, limit: 3}
`
	opt := Options{Out: filepath.Join(dir, "results"), Work: filepath.Join(dir, "work"), Zoo: zootest.Random{}}
	run := func(yml string, wantEvaluated int) *Report {
		t.Helper()
		s, err := Parse([]byte(yml), "recall.yaml", dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), s, opt)
		if err != nil {
			t.Fatal(err)
		}
		if rep.CellsEvaluated != wantEvaluated || rep.CellsCached != 2-wantEvaluated {
			t.Fatalf("%d cells evaluated, %d cached; want %d evaluated", rep.CellsEvaluated, rep.CellsCached, wantEvaluated)
		}
		return rep
	}
	run(suite, 2)
	withRecall := strings.Replace(suite, "formulations: [letters]", "formulations: [letters, recall]", 1)
	rep := run(withRecall, 2)
	rec, err := rep.Results.Record("products", "gemma-tiny", results.RAG)
	if err != nil {
		t.Fatal(err)
	}
	fr := rec.Formulations[evaluation.Recall]
	if fr == nil || fr.VsBase == nil || fr.ContainsVsBase == nil || fr.Extras.Overall.Contains == nil || fr.Extras.Overall.N != 3 {
		t.Fatalf("recall record %+v", fr)
	}
	logged, err := Samples(opt.Out, rec, evaluation.Recall)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EvaluateOne(mustLoadResults(t, opt.Out), "products", "gemma-tiny", results.RAG, evaluation.Recall, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range again.Samples {
		if s.Prompt != logged[i].Prompt || s.Recall.Generated != logged[i].Recall.Generated || !slices.Equal(s.Recall.TokenIDs, logged[i].Recall.TokenIDs) {
			t.Errorf("EvaluateOne answer %d: %+v, logged %+v", i, s.Recall, logged[i].Recall)
		}
	}
	run(withRecall, 0)

	// A cell.json with the right key but no recall record, as a cell written without it would
	// look: that cell is evaluated again, its generations read back from its request cache.
	done := filepath.Join(rec.dir, "cell.json")
	var stale CellRecord
	if err := readJSON(done, &stale); err != nil {
		t.Fatal(err)
	}
	delete(stale.Formulations, evaluation.Recall)
	if err := writeJSON(done, &stale); err != nil {
		t.Fatal(err)
	}
	rep = run(withRecall, 1)
	if rec, _ = rep.Results.Record("products", "gemma-tiny", results.RAG); rec.Formulations[evaluation.Recall] == nil ||
		rec.Formulations[evaluation.Recall].Extras.CachedRequests != 3 {
		t.Errorf("re-evaluated cell: %+v", rec.Formulations[evaluation.Recall])
	}

	// Only a formulation that generates adds to the key (cells of letters and cloze keep theirs).
	if parts, err := generationParts([]string{evaluation.Letters, evaluation.Cloze}); err != nil || len(parts) != 0 {
		t.Errorf("letters and cloze add %v (%v) to the cell key", parts, err)
	}
	if parts, err := generationParts([]string{evaluation.Letters, evaluation.Recall}); err != nil || len(parts) != 2 {
		t.Errorf("recall adds %v (%v) to the cell key", parts, err)
	}
}

// The local suite takes any checkpoint folder: a tiny random Qwen3 (models/llama) whose
// tokenizer_config.json carries a ChatML chat template gets the qwen3 prompt format by
// prompt_format: auto and runs the four conditions in every formulation; auto is refused for a
// zoo model and for a folder without a chat template, before any work.
func TestLocalSuiteAnyFamily(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "qwen3")
	cfg := map[string]any{"architectures": []string{"Qwen3ForCausalLM"}, "model_type": "qwen3", "vocab_size": 512,
		"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
		"head_dim": 8, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 1024, "hidden_act": "silu",
		"tie_word_embeddings": true, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "torch_dtype": "float32"}
	if err := zoo.RandomModel(model, cfg, 5); err != nil {
		t.Fatal(err)
	}
	setChatTemplate := func(dir string, tpl any) {
		path := filepath.Join(dir, "tokenizer_config.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var tc map[string]any
		if err := json.Unmarshal(raw, &tc); err != nil {
			t.Fatal(err)
		}
		tc["chat_template"] = tpl
		raw, _ = json.Marshal(tc)
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setChatTemplate(model, "{{- '<|im_start|>' + message.role + '\\n' + content }}{{- '<think>\\n\\n</think>\\n\\n' }}")
	s, err := Load("local", map[string]string{"MODEL": model})
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Models[0]; m.PromptFormat != "qwen3" || !strings.Contains(m.ChatTemplate, "<|im_start|>user\n{prompt}<|im_end|>") {
		t.Fatalf("local suite model: format %q, chat template %q", m.PromptFormat, m.ChatTemplate)
	}
	// The same model through a small suite: every condition and formulation runs.
	small := strings.Replace(strings.Replace(miniSuite, "path: zoo:gemma-tiny\n    chat_template: \"<start_of_turn>user\\n{prompt}<end_of_turn>\\n<start_of_turn>model\\n\"",
		"path: ${MODEL}\n    prompt_format: auto", 1), "  - name: other\n    path: ${OTHER_MODEL}\n", "", 1)
	small = strings.Replace(small, "seeds: [1, 2]", "seeds: [1]", 1)
	ms, err := Parse([]byte(small), "small.yaml", dir, map[string]string{"MODEL": model})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), ms, Options{Out: filepath.Join(dir, "results"), FineTuner: &scaleTuner{}, Zoo: zootest.Random{}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CellsEvaluated != 4 || rep.FineTuned != 1 {
		t.Fatalf("run: %+v", rep)
	}
	res, err := LoadResults(filepath.Join(dir, "results"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range res.Cells {
		seen[c.Condition+"/"+c.Formulation] = true
	}
	for _, cond := range []string{"base", "finetuned", "rag", "finetuned+rag"} {
		for _, f := range []string{"letters", "cloze", "recall"} {
			if !seen[cond+"/"+f] {
				t.Errorf("no %s cell in %s", f, cond)
			}
		}
	}
	// Refusals before work.
	if _, err := Parse([]byte(strings.Replace(small, "path: ${MODEL}", "path: zoo:gemma-tiny", 1)), "z.yaml", dir, nil); err == nil || !strings.Contains(err.Error(), "auto") {
		t.Errorf("auto on a zoo model: %v", err)
	}
	setChatTemplate(model, nil)
	if _, err := Load("local", map[string]string{"MODEL": model}); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("auto without a chat template: %v", err)
	}
}
