package evaluation

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/models/lm"
)

func TestNormalizeAnswer(t *testing.T) {
	for in, want := range map[string]string{
		"The Eiffel Tower.":             "eiffel tower",
		"  an   APPLE, a day\t":         "apple day",
		"state-of-the-art":              "stateoftheart", // removed, not replaced by a space (SQuAD)
		"“Quoted” — text…":              "quoted text",   // Unicode punctuation too
		"Theatre":                       "theatre",       // articles only as whole words
		"anémone":                       "anémone",
		"$5,000":                        "5000",
		"tab\tand\nnewline":             "tab and newline",
		"A":                             "",
		"":                              "",
		" the Lune.<end_of_turn>":       "luneendofturn",
		"parse_config(path='x.yaml')":   "parseconfigpathxyaml",
		"ÉCOLE Normale":                 "école normale",
		"the the a an The An A":         "",
		"An answer, with a THE article": "answer with article",
	} {
		if got := NormalizeAnswer(in); got != want {
			t.Errorf("NormalizeAnswer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRecallScores(t *testing.T) {
	for _, tc := range []struct {
		answer, gold    string
		exact, contains bool
	}{
		{"The Lune.", "lune", true, true},
		{" the LUNE", "The Lune", true, true},
		{"It is the Lune river", "Lune", false, true},
		{"Lunes", "Lune", false, false},          // whole words only
		{"Lune", "The Lune river", false, false}, // the answer must contain the gold, not the reverse
		{"", "Lune", false, false},
		{"the", "A", true, true}, // both normalise to nothing
		{"something", "The", false, false},
		{"Paris, France", "paris france", true, true},
		{"in Paris, France.", "Paris France", false, true},
		{"Ada Lovelace", "Ada", false, true},
	} {
		if got := ExactMatch(tc.answer, tc.gold); got != tc.exact {
			t.Errorf("ExactMatch(%q, %q) = %v", tc.answer, tc.gold, got)
		}
		if got := ContainsAnswer(tc.answer, tc.gold); got != tc.contains {
			t.Errorf("ContainsAnswer(%q, %q) = %v", tc.answer, tc.gold, got)
		}
		if ExactMatch(tc.answer, tc.gold) && !ContainsAnswer(tc.answer, tc.gold) {
			t.Errorf("%q: an exact match that does not contain the gold %q", tc.answer, tc.gold)
		}
	}
}

func TestRecallTaskData(t *testing.T) {
	task, err := DefaultTask(Recall)
	if err != nil {
		t.Fatal(err)
	}
	kw := task.GenerationKwargs
	if task.Formulation != Recall || !task.Generates() || kw == nil || kw.MaxGenToks != 24 || kw.DoSample ||
		!slices.Equal(kw.Until, []string{"\n", "<end_of_turn>"}) {
		t.Fatalf("embedded recall task: %+v %+v", task, kw)
	}
	q := curriculum.Question{ID: "q", Question: "Which river?", Choices: []string{"Lune", "Wyre"}, Answer: 0}
	if p, _ := task.Prompt(&q); p != "Question: Which river?\nAnswer:" {
		t.Errorf("recall prompt %q", p)
	}
	// lm-eval's until may be one string.
	one, err := ParseTask([]byte("task: r\noutput_type: generate_until\ndoc_to_text: '{question}'\ngeneration_kwargs: {until: \"\\n\", max_gen_toks: 8}\n"), "one.yaml")
	if err != nil || one.Formulation != Recall || !slices.Equal(one.GenerationKwargs.Until, []string{"\n"}) {
		t.Fatalf("until as a string: %v %+v", err, one)
	}
	const gen = "task: r\noutput_type: generate_until\ndoc_to_text: '{question}'\n"
	for _, tc := range []struct{ yml, want string }{
		{gen, "needs generation_kwargs"},
		{gen + "generation_kwargs: {until: [\"\\n\"]}\n", "max_gen_toks 0"},
		{gen + "generation_kwargs: {max_gen_toks: 1000}\n", "max_gen_toks 1000"},
		{gen + "generation_kwargs: {max_gen_toks: 8, do_sample: true}\n", "do_sample"},
		{gen + "generation_kwargs: {max_gen_toks: 8, temperature: 0.7}\n", "temperature 0.7"},
		{gen + "generation_kwargs: {max_gen_toks: 8, until: [\"\\n\", \"\"]}\n", "until[1] is empty"},
		{gen + "generation_kwargs: {max_gen_toks: 8, top_p: 0.9}\n", `key "top_p"`},
		{gen + "generation_kwargs: [8]\n", "must be a mapping"},
		{gen + "generation_kwargs: {max_gen_toks: eight}\n", "max_gen_toks must be an integer"},
		{gen + "generation_kwargs: {max_gen_toks: 8}\ndoc_to_choice: choices\n", "remove doc_to_choice"},
		{gen + "generation_kwargs: {max_gen_toks: 8}\nformulation: cloze\n", `not "cloze"`},
		{"task: r\ndoc_to_text: x\ndoc_to_choice: choices\ngeneration_kwargs: {max_gen_toks: 8}\n", "generation_kwargs belong to output_type generate_until"},
		{"task: r\ndoc_to_text: x\ndoc_to_choice: choices\nformulation: recall\n", "generates its answer"},
		{"task: r\ndoc_to_text: x\noutput_type: loglikelihood\n", `output_type "loglikelihood"`},
	} {
		_, err := ParseTask([]byte(tc.yml), "bad.yaml")
		if err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming bad.yaml and %q", tc.yml, err, tc.want)
		}
	}
}

func TestCutAnswer(t *testing.T) {
	ids := func(s string) []int32 { return byteTokenizer{}.Encode(s) }
	dec := decoderFunc(decode)
	const eos = 3
	for _, tc := range []struct {
		gen           []int32
		until         []string
		text, stopped string
		stopString    string
		done          bool
	}{
		{append(ids(" Lune"), eos), []string{"\n"}, " Lune", "eos", "", true},
		{ids(" Lune\nQuestion"), []string{"\n"}, " Lune", "until", "\n", true},
		{ids(" Lune. END\nx"), []string{"\n", "END"}, " Lune. ", "until", "END", true}, // the earliest wins
		{ids(" Lune and on"), []string{"\n"}, " Lune and on", "length", "", false},
		{append(ids("\n"), eos), []string{"\n"}, "", "until", "\n", true},
	} {
		text, stopped, stop, done := cutAnswer(tc.gen, dec, []int32{eos}, tc.until)
		if text != tc.text || stopped != tc.stopped || stop != tc.stopString || done != tc.done {
			t.Errorf("cutAnswer(%q, %q) = %q %q %q %v, want %q %q %q %v", decode(tc.gen), tc.until, text, stopped, stop, done,
				tc.text, tc.stopped, tc.stopString, tc.done)
		}
	}
}

type decoderFunc func([]int32) string

func (d decoderFunc) Decode(ids []int32) string { return d(ids) }

// scriptedGenerator follows lm.Model.Generate's contract with answers chosen by the question in
// the prompt (byteTokenizer text), each followed by its stop token.
type scriptedGenerator struct {
	answers map[string]string
	stop    int32
	calls   int
	prompts [][]int32
}

func (g *scriptedGenerator) Generate(prompt []int32, opts lm.GenerateOptions) ([]int32, error) {
	g.calls++
	g.prompts = append(g.prompts, slices.Clone(prompt))
	answer := " no idea"
	for q, a := range g.answers {
		if strings.Contains(decode(prompt), "Question: "+q+"\n") {
			answer = a
		}
	}
	var out []int32
	for _, id := range append(byteTokenizer{}.Encode(answer), g.stop) {
		out = append(out, id)
		if (opts.OnToken != nil && !opts.OnToken(id)) || len(out) >= opts.MaxNewTokens || slices.Contains(opts.StopTokens, id) {
			break
		}
	}
	return out, nil
}

func recallQuestions() []curriculum.Question {
	return []curriculum.Question{
		{ID: "r1", Question: "Which river?", Choices: []string{"Wyre", "The Lune"}, Answer: 1, Kind: curriculum.KindSeen, ChunkID: "c1"},
		{ID: "r2", Question: "Who?", Choices: []string{"Ada", "Bob"}, Answer: 0, Kind: curriculum.KindDocumentOnly, ChunkID: "c2"},
		{ID: "r3", Question: "When?", Choices: []string{"1815", "1816"}, Answer: 0, Kind: curriculum.KindSeen},
		{ID: "r4", Question: "Which river?", Choices: []string{"Wyre", "The Lune"}, Answer: 1, Kind: curriculum.KindSeen}, // same prompt as r1
	}
}

func TestEvaluateRecall(t *testing.T) {
	task, _ := DefaultTask(Recall)
	gen := &scriptedGenerator{stop: 3, answers: map[string]string{
		"Which river?": " the Lune.",
		"Who?":         " Ada Lovelace\nQuestion: and then",
		"When?":        " eighteen hundred and fifteen, more or less, as far as anyone knows",
	}}
	g := &Generation{Generator: gen, Decoder: decoderFunc(decode), StopTokens: []int32{3}}
	enc := Encoder{Tokenizer: byteTokenizer{}, AddBOS: true, BOS: 2}
	if _, err := Evaluate(recallQuestions(), Options{Task: task, Encoder: enc}); err == nil || !strings.Contains(err.Error(), "Options.Generation") {
		t.Fatalf("recall without a generator: %v", err)
	}
	cache, err := OpenCache(filepath.Join(t.TempDir(), "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	opt := Options{Task: task, Encoder: enc, Generation: g, ModelKey: "m", Cache: cache}
	run, err := Evaluate(recallQuestions(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if gen.calls != 3 || run.Requests != 3 || run.Cached != 0 {
		t.Fatalf("%d generations, %d requests, %d cached: one per distinct prompt", gen.calls, run.Requests, run.Cached)
	}
	if want := append([]int32{2}, byteTokenizer{}.Encode("Question: Which river?\nAnswer:")...); !slices.Equal(gen.prompts[0], want) {
		t.Errorf("prompt ids %v, want BOS + the rendered prompt", gen.prompts[0])
	}
	want := []struct {
		generated, stopped string
		exact, contains    float64
		tokens             int
	}{
		{" the Lune.", "eos", 1, 1, len(" the Lune.") + 1},
		{" Ada Lovelace", "until", 0, 1, len(" Ada Lovelace\n")}, // generation stopped at the new line
		{" eighteen hundred and fi", "length", 0, 0, 24},
		{" the Lune.", "eos", 1, 1, len(" the Lune.") + 1},
	}
	for i, s := range run.Samples {
		r, w := s.Recall, want[i]
		if r == nil || r.Generated != w.generated || r.Stopped != w.stopped || r.ExactMatch != w.exact || r.Contains != w.contains ||
			len(r.TokenIDs) != w.tokens || s.Acc != w.exact || s.Prediction != -1 || r.Gold != s.Doc.Choices[s.Doc.Answer] {
			t.Errorf("sample %d: %+v %+v, want %+v", i, s, r, w)
		}
	}
	res, err := run.Results(4)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Results[task.Name]
	ex := res.Perpetual[task.Name]
	if m["exact_match,none"] != 0.5 || m["contains,none"] != 0.75 || m["acc,none"] != nil ||
		ex.Overall.Contains == nil || ex.Overall.Contains.Wilson[0] >= 0.75 || ex.Overall.Wilson[1] <= 0.5 ||
		ex.ByKind[curriculum.KindSeen].Contains.Mean != 2.0/3 || ex.Stopped["length"] != 1 || ex.Baselines.Always != nil {
		t.Errorf("results %v, extras %+v", m, ex)
	}
	// The per-sample log has the prompt, the answer, its tokens and both scores.
	dir := t.TempDir()
	if err := run.WriteFiles(dir, 4); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, SamplesFile(task.Name)))
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(string(raw), "\n", 2)[0]), &line); err != nil {
		t.Fatal(err)
	}
	rec, _ := line["recall"].(map[string]any)
	if line["prompt"] != "Question: Which river?\nAnswer:" || rec["generated"] != " the Lune." || rec["exact_match"] != 1.0 ||
		rec["contains"] != 1.0 || rec["normalized_generated"] != "lune" || len(rec["token_ids"].([]any)) != 11 || line["context_token_ids"] == nil {
		t.Errorf("log line %s", strings.SplitN(string(raw), "\n", 2)[0])
	}
	back, err := ReadSamples(filepath.Join(dir, SamplesFile(task.Name)))
	if err != nil || back[1].Recall.Generated != " Ada Lovelace" {
		t.Fatalf("reading the log back: %v", err)
	}

	// Rerun: every generation comes from the cache, with the same answers.
	again, err := Evaluate(recallQuestions(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if gen.calls != 3 || again.Cached != 3 || again.Samples[1].Recall.Generated != " Ada Lovelace" {
		t.Errorf("cached rerun: %d generations, %d cached", gen.calls, again.Cached)
	}
	reopened, err := OpenCache(filepath.Join(filepath.Dir(cache.path), "cache.jsonl"))
	if err != nil || reopened.Len() != 3 {
		t.Fatalf("reopened cache: %v, %d entries", err, reopened.Len())
	}
	reopened.Close()

	// Paired tests on both scores: a condition that answers everything right.
	better := &scriptedGenerator{stop: 3, answers: map[string]string{"Which river?": " Lune", "Who?": " Ada", "When?": " 1815"}}
	cond, err := Evaluate(recallQuestions(), Options{Task: task, Encoder: enc, Generation: &Generation{Generator: better, Decoder: decoderFunc(decode), StopTokens: []int32{3}}})
	if err != nil {
		t.Fatal(err)
	}
	em, err := Compare(run.Samples, cond.Samples, 200, 1)
	if err != nil || em.BaseAcc != 0.5 || em.Acc != 1 || em.McNemar.OnlyB != 2 {
		t.Errorf("exact match comparison %+v, %v", em, err)
	}
	c, err := CompareMetric(run.Samples, cond.Samples, MetricContains, 200, 1)
	if err != nil || c.BaseAcc != 0.75 || c.Acc != 1 || c.McNemar.OnlyB != 1 {
		t.Errorf("contains comparison %+v, %v", c, err)
	}
	cloze, _ := DefaultTask(Cloze)
	mc, err := Evaluate(recallQuestions(), Options{Task: cloze, Encoder: enc, Scorer: metricScorer()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CompareMetric(mc.Samples, cond.Samples, MetricContains, 10, 1); err == nil || !strings.Contains(err.Error(), "recall score") {
		t.Errorf("contains on multiple-choice samples: %v", err)
	}
	if !slices.Equal(Metrics(Recall), []string{MetricExactMatch, MetricContains}) || !slices.Equal(Metrics(Cloze), []string{MetricAcc}) {
		t.Errorf("metrics %v %v", Metrics(Recall), Metrics(Cloze))
	}
}

// Retrieved passages are dropped from the lowest-ranked until prompt and answer fit the window;
// then lm-eval's left truncation keeps the last max_length - max_gen_toks prompt tokens.
func TestRecallWindow(t *testing.T) {
	task, _ := DefaultTask(Recall)
	task.GenerationKwargs.MaxGenToks = 8
	gen := &scriptedGenerator{stop: 3}
	g := &Generation{Generator: gen, Decoder: decoderFunc(decode), StopTokens: []int32{3}}
	q := recallQuestions()[:1]
	ret := fakeRetriever{[]Passage{{ID: "c1", Text: "Lune."}, {ID: "c9", Text: strings.Repeat("long passage ", 4)}}}
	enc := Encoder{Tokenizer: byteTokenizer{}, AddBOS: true, BOS: 2, MaxLength: 56}
	run, err := Evaluate(q, Options{Task: task, Encoder: enc, Generation: g, Retriever: ret, K: 2})
	if err != nil {
		t.Fatal(err)
	}
	s := run.Samples[0]
	if s.PassagesCut != 1 || !slices.Equal(s.Retrieved, []string{"c1"}) || s.ChunkRecalled == nil || !*s.ChunkRecalled ||
		s.Prompt != "Lune.\n\nQuestion: Which river?\nAnswer:" || s.TruncatedTokens != 0 || len(gen.prompts[0]) > 56-8 {
		t.Errorf("window fitting: %+v, prompt of %d tokens", s, len(gen.prompts[0]))
	}
	enc.MaxLength = 20
	run, err = Evaluate(q, Options{Task: task, Encoder: enc, Generation: g, Retriever: ret, K: 2})
	if err != nil {
		t.Fatal(err)
	}
	s = run.Samples[0]
	last := gen.prompts[len(gen.prompts)-1]
	if s.PassagesCut != 2 || len(s.Retrieved) != 0 || len(last) != 12 || s.TruncatedTokens != len(s.ContextTokenIDs)-12 ||
		!slices.Equal(last, s.ContextTokenIDs[s.TruncatedTokens:]) || decode(last) != "ver?\nAnswer:" {
		t.Errorf("left truncation: %+v, prompt %q", s, decode(last))
	}
	enc.MaxLength = 8
	if _, err := Evaluate(q, Options{Task: task, Encoder: enc, Generation: g}); err == nil || !strings.Contains(err.Error(), "max_gen_toks 8") {
		t.Errorf("no room for a prompt: %v", err)
	}
}

// On a real model (the tiny Gemma through lm.Model and its cached decoding), the recall answer is
// the greedy argmax continuation recomputed from the full sequence at every step, and an until
// string cuts the answer and ends generation there.
func TestRecallTinyGemmaGreedy(t *testing.T) {
	qs, err := readQuestionsJSONL(filepath.Join("testdata", "tiny_questions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	qs = qs[:6]
	tk := loadTinyTokenizer(t, "gemma")
	m := loadTinyModel(t, "gemma")
	enc := Encoder{Tokenizer: tk, AddBOS: true, BOS: tk.bos, MaxLength: m.Arch().MaxLength()}
	task, _ := DefaultTask(Recall)
	task.GenerationKwargs.Until = nil
	task.GenerationKwargs.MaxGenToks = 10
	const eos = 1 // config.json's eos_token_id
	g := &Generation{Generator: m, Decoder: tk, StopTokens: []int32{eos}}
	run, err := Evaluate(qs, Options{Task: task, Encoder: enc, Generation: g})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range run.Samples {
		r := s.Recall
		seq := slices.Clone(s.ContextTokenIDs[s.TruncatedTokens:])
		if len(seq)+task.GenerationKwargs.MaxGenToks > enc.MaxLength {
			t.Fatalf("%s: prompt of %d tokens leaves no room for the answer in %d", s.Doc.ID, len(seq), enc.MaxLength)
		}
		for step, id := range r.TokenIDs {
			logits, err := m.Logits([][]int32{seq})
			if err != nil {
				t.Fatal(err)
			}
			last := logits[0][len(seq)-1]
			arg := 0
			for j := range last {
				if last[j] > last[arg] {
					arg = j
				}
			}
			if int32(arg) != id {
				t.Fatalf("%s: step %d generated %d, the full sequence's argmax is %d", s.Doc.ID, step, id, arg)
			}
			seq = append(seq, id)
		}
		if (r.Stopped == "length") != (len(r.TokenIDs) == 10) || (r.Stopped == "eos") != (r.TokenIDs[len(r.TokenIDs)-1] == eos) {
			t.Errorf("%s: %d tokens, stopped %q", s.Doc.ID, len(r.TokenIDs), r.Stopped)
		}
		if r.Stopped != "eos" && r.Generated != tk.Decode(r.TokenIDs) {
			t.Errorf("%s: answer %q, decoded tokens %q", s.Doc.ID, r.Generated, tk.Decode(r.TokenIDs))
		}
	}
	// An until string first generated in the middle of an answer: the answer is cut before it and
	// generation stops at the token that completed it.
	s, k, stop := -1, 0, ""
	for i, smp := range run.Samples {
		ids := smp.Recall.TokenIDs
		for j := 1; j < len(ids) && s < 0; j++ {
			if p := tk.Decode(ids[j : j+1]); p != "" && !strings.Contains(tk.Decode(ids[:j]), p) && tk.Decode(ids[:j]) != "" {
				s, k, stop = i, j, p
			}
		}
	}
	if s < 0 {
		t.Fatal("no answer with a piece that first occurs after some text")
	}
	full := run.Samples[s].Recall
	task.GenerationKwargs.Until = []string{stop}
	cut, err := Evaluate(qs[s:s+1], Options{Task: task, Encoder: enc, Generation: g})
	if err != nil {
		t.Fatal(err)
	}
	r := cut.Samples[0].Recall
	if r.Stopped != "until" || r.StopString != stop || r.Generated != tk.Decode(full.TokenIDs[:k]) || r.Generated == "" ||
		!slices.Equal(r.TokenIDs, full.TokenIDs[:k+1]) {
		t.Errorf("until %q: answer %q (%d tokens, stopped %s), uncut %q (%d tokens)", stop, r.Generated, len(r.TokenIDs), r.Stopped,
			full.Generated, len(full.TokenIDs))
	}
	t.Logf("until %q cut %q (%d tokens) to %q (%d tokens)", stop, full.Generated, len(full.TokenIDs), r.Generated, len(r.TokenIDs))
}
