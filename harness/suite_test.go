package harness

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/harness/results"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"
)

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
		{strings.Replace(base, "seed: 1}", "seed: 1, doc_variants: -1}", 1), "doc_variants must be >= 0"},
		{strings.Replace(base, "seed: 1}", "seed: 1, paraphrases: 3}", 1), "paraphrases must be 0 to 2"},
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
	// The fine-tuning development suite draws its knowledge bases with seeds neither suite
	// uses, and holds the default's gemma-tiny recipe among its candidates.
	dev, err := Load("finetune-dev", nil)
	if err != nil {
		t.Fatal(err)
	}
	used := map[int64]bool{}
	for _, suite := range []*Suite{s, g} {
		for _, task := range suite.Tasks {
			used[task.Synthetic.Seed] = true
		}
	}
	for i, task := range dev.Tasks {
		if task.Synthetic == nil || used[task.Synthetic.Seed] {
			t.Errorf("finetune-dev task %s reuses a seed: %+v", task.Name, task.Synthetic)
		}
		// The same curriculum levers as the default's tasks, so its recipes mean the same there.
		if d := s.Tasks[i].Synthetic; task.Synthetic.Paraphrases != d.Paraphrases || task.Synthetic.DocVariants != d.DocVariants {
			t.Errorf("finetune-dev task %s: %+v, the default's %+v", task.Name, task.Synthetic, d)
		}
	}
	want := s.Recipe(s.Models[0])
	found := false
	for _, m := range dev.Models {
		found = found || (m.Path == s.Models[0].Path && reflect.DeepEqual(dev.Recipe(m), want))
	}
	if !found {
		t.Errorf("finetune-dev has no model with the default's gemma-tiny recipe %+v", want)
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
	run := cellRunner(t, dir, "options.yaml", opt, 4)
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

// eval.shared_context scores cloze choices from one pass over their shared context: the cells
// are evaluated again (keyed apart from the full path's), the log-likelihoods equal the full
// path's up to float32 rounding, and a second run reads them back.
func TestSuiteSharedContext(t *testing.T) {
	dir := t.TempDir()
	const suite = `
name: shared
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
formulations: [cloze]
eval: {bootstrap: 100, limit: 3}
`
	opt := Options{Out: filepath.Join(dir, "results"), Work: filepath.Join(dir, "work"), Zoo: zootest.Random{}}
	run := cellRunner(t, dir, "shared.yaml", opt, 4)
	samples := func(rep *Report, model, cond string) (string, []evaluation.Sample) {
		t.Helper()
		rec, err := rep.Results.Record("products", model, cond)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Samples(opt.Out, rec, evaluation.Cloze)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Key, s
	}
	// The output folder holds the latest run's samples: read the full path's first.
	type cell struct{ model, cond string }
	fullKeys, fullSamples := map[cell]string{}, map[cell][]evaluation.Sample{}
	full := run(suite, 4)
	for _, model := range []string{"gemma-tiny", "mamba-tiny"} {
		for _, cond := range []string{results.Base, results.RAG} {
			c := cell{model, cond}
			fullKeys[c], fullSamples[c] = samples(full, model, cond)
		}
	}
	sharedSuite := strings.Replace(suite, "limit: 3}", "limit: 3, shared_context: true}", 1)
	shared := run(sharedSuite, 4)
	maxDiff := 0.0
	for _, model := range []string{"gemma-tiny", "mamba-tiny"} {
		for _, cond := range []string{results.Base, results.RAG} {
			fk, fs := fullKeys[cell{model, cond}], fullSamples[cell{model, cond}]
			sk, ss := samples(shared, model, cond)
			if len(fs) != 3 || len(ss) != 3 {
				t.Fatalf("%s %s: %d and %d samples, want 3", model, cond, len(fs), len(ss))
			}
			if fk == sk {
				t.Errorf("%s %s: shared_context does not change the cell key", model, cond)
			}
			for i := range fs {
				for c := range fs[i].LogLiks {
					d := math.Abs(fs[i].LogLiks[c] - ss[i].LogLiks[c])
					maxDiff = max(maxDiff, d)
					if d > 1e-4 || fs[i].ContTokens[c] != ss[i].ContTokens[c] {
						t.Errorf("%s %s question %d choice %d: shared %v (%d tokens), full %v (%d tokens)", model, cond, i, c,
							ss[i].LogLiks[c], ss[i].ContTokens[c], fs[i].LogLiks[c], fs[i].ContTokens[c])
					}
				}
			}
		}
	}
	t.Logf("max |log-likelihood difference| %.2e", maxDiff)
	run(sharedSuite, 0)
}

// The scorer and request-cache key of a cell: the shared-context path under its own key for
// choices, the model itself for generation and without the option.
func TestCellScorer(t *testing.T) {
	cloze, err := evaluation.DefaultTask(evaluation.Cloze)
	if err != nil {
		t.Fatal(err)
	}
	recall, err := evaluation.DefaultTask(evaluation.Recall)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{s: &Suite{Eval: EvalSettings{SharedContext: true}}}
	if sc, key := r.scorer(cloze, "h"); key != "h+shared-context" {
		t.Errorf("shared cloze: %T under %q", sc, key)
	} else if _, ok := sc.(lm.SharedContextScorer); !ok {
		t.Errorf("shared cloze scored by %T", sc)
	}
	if sc, key := r.scorer(recall, "h"); key != "h" || sc != evaluation.Scorer(r.loaded) {
		t.Errorf("shared recall: %T under %q", sc, key)
	}
	r.s.Eval.SharedContext = false
	if sc, key := r.scorer(cloze, "h"); key != "h" || sc != evaluation.Scorer(r.loaded) {
		t.Errorf("full cloze: %T under %q", sc, key)
	}
}

// Without issue 16's options, and with the window and BOS the harness used before, a cell's key

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
