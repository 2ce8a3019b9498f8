package evaluation

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/perpetual-ml/perpetual/internal/testenv"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// byteTokenizer encodes each byte as its own token, so tests can read requests back as text.
type byteTokenizer struct{}

func (byteTokenizer) Encode(text string) []int32 {
	out := make([]int32, len(text))
	for i := 0; i < len(text); i++ {
		out[i] = int32(text[i]) + 10
	}
	return out
}

func decode(ids []int32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id >= 10 {
			b = append(b, byte(id-10))
		}
	}
	return string(b)
}

// fakeScorer returns preset log-likelihoods by continuation text (default -10) and records calls.
type fakeScorer struct {
	ll       map[string]float64
	calls    int
	requests [][]Request
	err      error
}

func (f *fakeScorer) LogLikelihood(reqs []Request, batchSize int) ([]Result, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.calls++
	f.requests = append(f.requests, slices.Clone(reqs))
	out := make([]Result, len(reqs))
	for i, r := range reqs {
		v, ok := f.ll[decode(r.Continuation)]
		if !ok {
			// Deterministic but context-dependent, so different prompts give different numbers.
			v = -10 - float64(len(r.Context)%7)
		}
		out[i] = Result{LogProb: v, IsGreedy: v > -1, NumTokens: len(r.Continuation)}
	}
	return out, nil
}

func TestEncodePairHarnessSemantics(t *testing.T) {
	tk := &tinyTokenizer{pieces: []string{" ", "A", " A", "Answer", ":", "t", "h", "the", "x"}, first: 4, unk: 3, bos: 2}
	id := func(p string) int32 { return tk.first + int32(slices.Index(tk.pieces, p)) }
	e := Encoder{Tokenizer: tk, AddBOS: true, BOS: 2}
	// Trailing whitespace moves to the continuation, which then encodes as " A" (one piece).
	p, err := e.EncodePair("Answer: ", "A")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Context, []int32{2, id("Answer"), id(":")}) || !slices.Equal(p.Continuation, []int32{id(" A")}) {
		t.Errorf("got %v + %v", p.Context, p.Continuation)
	}
	if c, k := SplitTrailingSpace("q \n\t", "x"); c != "q" || k != " \n\tx" {
		t.Errorf("SplitTrailingSpace: %q %q", c, k)
	}
	// Empty context: the BOS token alone, continuation without BOS.
	p, err = e.EncodePair("", " A")
	if err != nil || !slices.Equal(p.Context, []int32{2}) || !slices.Equal(p.Continuation, []int32{id(" A")}) {
		t.Errorf("empty context: %v %v %v", p.Context, p.Continuation, err)
	}
	// Without BOS (a tokenizer with add_bos_token false).
	e.AddBOS = false
	p, _ = e.EncodePair("Answer:", " A")
	if !slices.Equal(p.Context, []int32{id("Answer"), id(":")}) {
		t.Errorf("no BOS: %v", p.Context)
	}
	// A merge across the boundary swallows the continuation: an error, not a silent empty score.
	if _, err := e.EncodePair("th", "e"); err == nil || !strings.Contains(err.Error(), `"th"`) {
		t.Errorf("boundary merge: %v", err)
	}
	// Left truncation keeps the last MaxLength+1 tokens and counts what it dropped.
	e = Encoder{Tokenizer: byteTokenizer{}, AddBOS: true, BOS: 2, MaxLength: 5}
	p, err = e.EncodePair("abcdefgh", " A")
	if err != nil {
		t.Fatal(err)
	}
	if decode(p.Context) != "efgh" || decode(p.Continuation) != " A" || p.Truncated != 5 {
		t.Errorf("truncation: %q %q truncated %d", decode(p.Context), decode(p.Continuation), p.Truncated)
	}
	if _, err := e.EncodePair("a", " too long for five"); err == nil {
		t.Error("a continuation longer than the window was accepted")
	}
}

func TestTaskParsing(t *testing.T) {
	if got := DefaultTasks(); !slices.Equal(got, []string{"perpetual_cloze", "perpetual_letters", "perpetual_recall"}) {
		t.Errorf("DefaultTasks = %v", got)
	}
	q := curriculum.Question{ID: "q1", Question: "Which?", Choices: []string{"w", "x", "y", "z"}, Answer: 2, Kind: curriculum.KindSeen}
	letters, err := DefaultTask(Letters)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := letters.Prompt(&q); p != "Which?\nA. w\nB. x\nC. y\nD. z\nAnswer:" {
		t.Errorf("letters prompt %q", p)
	}
	if !slices.Equal(letters.Choices(&q), []string{"A", "B", "C", "D"}) || letters.Formulation != Letters {
		t.Errorf("letters choices %v", letters.Choices(&q))
	}
	cloze, err := DefaultTask(Cloze)
	if err != nil || !slices.Equal(cloze.Choices(&q), q.Choices) {
		t.Fatalf("cloze: %v %v", err, cloze)
	}
	if _, err := DefaultTask("essay"); err == nil {
		t.Error("unknown formulation accepted")
	}
	// An lm-evaluation-harness task YAML, Jinja spellings and fields we do not interpret.
	yml := `task: mmlu_like
dataset_path: foo/bar
output_type: multiple_choice
doc_to_text: "{{question | upper}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
metric_list:
  - metric: acc
`
	if _, err := ParseTask([]byte(yml), "mmlu.yaml"); err == nil || !strings.Contains(err.Error(), "mmlu.yaml") {
		t.Errorf("an unsupported Jinja expression should be an error naming the file, got %v", err)
	}
	yml = strings.Replace(yml, "{{question | upper}}", `Q: {{question}}\nOptions: {{choices[0]}} / {{ choices[1] }}\nA:`, 1)
	task, err := ParseTask([]byte(yml), "mmlu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if task.Formulation != Cloze || task.TargetDelimiter != " " || task.Metadata["dataset_path"] != "foo/bar" {
		t.Errorf("parsed %+v", task)
	}
	if p, _ := task.Prompt(&q); p != "Q: Which?\nOptions: w / x\nA:" {
		t.Errorf("prompt %q", p)
	}
	// Few-shot examples go first, each with its gold choice and the few-shot delimiter.
	task.FewshotExamples = []curriculum.Question{{ID: "ex", Question: "Ex?", Choices: []string{"no", "yes"}, Answer: 1}}
	task.NumFewshot = 1
	task.Description = "Quiz.\n"
	if p, _ := task.Prompt(&q); p != "Quiz.\nQ: Ex?\nOptions: no / yes\nA: yes\n\nQ: Which?\nOptions: w / x\nA:" {
		t.Errorf("few-shot prompt %q", p)
	}
	for _, bad := range []string{
		"task: t\noutput_type: generate_until\ndoc_to_text: x\ndoc_to_choice: [A]\n",
		"task: t\ndoc_to_text: '{nope}'\ndoc_to_choice: [A]\n",
		"task: t\ndoc_to_text: x\n",
		"task: t\ndoc_to_text: x\ndoc_to_choice: [A]\ndoc_to_target: label\n",
		"doc_to_text: x\ndoc_to_choice: [A]\n",
		"task: t\ndoc_to_text: x\ndoc_to_choice: [A]\nnum_fewshot: 2\n",
		"task: [\n",
	} {
		if _, err := ParseTask([]byte(bad), "bad.yaml"); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("task %q: error %v", bad, err)
		}
	}
	// A chat template wraps the whole prompt; the delimiter and choice follow it.
	task.ChatTemplate = "<user>{prompt}</user><model>"
	if task.WrapChat("hi") != "<user>hi</user><model>" {
		t.Errorf("chat wrap %q", task.WrapChat("hi"))
	}
	if _, err := ParseTask([]byte("task: t\ndoc_to_text: x\ndoc_to_choice: [A]\nchat_template: nothing\n"), "chat.yaml"); err == nil {
		t.Error("a chat template without {prompt} was accepted")
	}
	task.ChatTemplate = ""
	// A template that needs a fifth choice fails on a four-choice question, naming it.
	task.DocToText = "{question} {c4}"
	task.NumFewshot = 0
	if _, err := task.Prompt(&q); err == nil || !strings.Contains(err.Error(), `"q1"`) {
		t.Errorf("missing choice: %v", err)
	}
}

// A misspelt or unknown key is refused, naming the key and the file, instead of silently
// leaving its field at the default; lm-eval keys that are not interpreted are still accepted.
func TestTaskUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ yml, key string }{
		{"task: t\ndoc_to_txt: x\ndoc_to_text: y\ndoc_to_choice: [A]\n", "doc_to_txt"},
		{"task: t\ndoc_to_text: x\ndoc_to_choice: [A]\nnum_few_shot: 1\n", "num_few_shot"},
		{"task: t\ndoc_to_text: x\ndoc_to_choice: [A]\ncontext_templat: '{context}'\n", "context_templat"},
	} {
		_, err := ParseTask([]byte(tc.yml), "typo.yaml")
		if err == nil || !strings.Contains(err.Error(), "typo.yaml") || !strings.Contains(err.Error(), `"`+tc.key+`"`) {
			t.Errorf("key %s: error %v, want one naming the key and typo.yaml", tc.key, err)
		}
	}
	ok := "task: t\ndoc_to_text: x\ndoc_to_choice: [A]\ndataset_path: a/b\ntest_split: test\nmetric_list: [{metric: acc}]\nmetadata: {version: 1}\n"
	task, err := ParseTask([]byte(ok), "ok.yaml")
	if err != nil || task.Metadata["test_split"] != "test" {
		t.Fatalf("lm-eval keys: %v %+v", err, task)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "task.yaml")
	os.WriteFile(file, []byte("task: t\ndoc_to_text: x\ndoc_to_choice: [A]\nfewshot_delimeter: x\n"), 0o644)
	if _, err := LoadTask(file); err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "fewshot_delimeter") {
		t.Errorf("LoadTask: %v", err)
	}
}

func questionsForMetrics() []curriculum.Question {
	return []curriculum.Question{
		// acc picks "a" (highest sum), acc_norm picks the long choice (highest per character).
		{ID: "m1", Question: "one", Choices: []string{"a", "bbbbbbbbbb"}, Answer: 1, Kind: curriculum.KindSeen},
		// acc_norm (characters) picks "ab"; acc_bytes picks "éé" (2 characters, 4 bytes).
		{ID: "m2", Question: "two", Choices: []string{"éé", "ab"}, Answer: 0, Kind: curriculum.KindDocumentOnly},
		// A tie goes to the first choice, as numpy's argmax.
		{ID: "m3", Question: "three", Choices: []string{"tie1", "tie2"}, Answer: 1, Kind: curriculum.KindSeen},
	}
}

func metricScorer() *fakeScorer {
	return &fakeScorer{ll: map[string]float64{
		" a": -2, " bbbbbbbbbb": -5,
		" éé": -3, " ab": -2.5,
		" tie1": -0.5, " tie2": -0.5,
	}}
}

func TestEvaluateMetrics(t *testing.T) {
	cloze, _ := DefaultTask(Cloze)
	run, err := Evaluate(questionsForMetrics(), Options{Task: cloze, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: metricScorer()})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ pred, predNorm, acc, accNorm, accBytes float64 }{
		{0, 1, 0, 1, 1}, {1, 1, 0, 0, 1}, {0, 0, 0, 0, 0},
	}
	for i, s := range run.Samples {
		w := want[i]
		if float64(s.Prediction) != w.pred || float64(s.PredNorm) != w.predNorm || s.Acc != w.acc || s.AccNorm != w.accNorm || s.AccBytes != w.accBytes {
			t.Errorf("question %d: %+v, want %+v", i, s, w)
		}
		if s.Args[0][1] != " "+s.Choices[0] || !strings.HasSuffix(s.Args[0][0], "Answer:") {
			t.Errorf("question %d arguments %q", i, s.Args)
		}
	}
	if !run.Samples[2].IsGreedy[0] || run.Samples[0].IsGreedy[0] {
		t.Errorf("is_greedy not carried: %+v", run.Samples)
	}
	res, err := run.Results(3)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Results["perpetual_cloze"]
	if r["acc,none"] != 0.0 || r["acc_norm,none"] != 1.0/3 || r["acc_bytes,none"] != 2.0/3 {
		t.Errorf("results %v", r)
	}
	ex := res.Perpetual["perpetual_cloze"]
	if ex.ByKind["seen"].N != 2 || ex.ByKind["document_only"].N != 1 || ex.ByKind["seen"].AccNorm != 0.5 {
		t.Errorf("by kind %+v", ex.ByKind)
	}
	if ex.Baselines.Chance != 0.5 || ex.Baselines.Always["A"] != 1.0/3 || ex.Baselines.Always["B"] != 2.0/3 {
		t.Errorf("baselines %+v", ex.Baselines)
	}
	// Bad scorer output and bad questions are errors, not panics.
	_, err = Evaluate(questionsForMetrics(), Options{Task: cloze, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: &fakeScorer{err: errors.New("boom")}})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("scorer error: %v", err)
	}
	bad := questionsForMetrics()
	bad[1].Answer = 7
	if _, err := Evaluate(bad, Options{Task: cloze, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: metricScorer()}); err == nil || !strings.Contains(err.Error(), "m2") {
		t.Errorf("bad question: %v", err)
	}
}

func manyQuestions(n int) []curriculum.Question {
	words := []string{"red", "green", "blue", "cyan", "amber", "violet", "teal"}
	var qs []curriculum.Question
	for i := range n {
		q := curriculum.Question{ID: "q" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Kind: curriculum.KindSeen,
			Question: strings.Repeat(words[i%len(words)]+" ", 1+i%5) + strings.Repeat("?", 1+i/7), Answer: i % 4}
		for c := range 4 {
			q.Choices = append(q.Choices, words[(i+c)%len(words)]+strings.Repeat("!", c))
		}
		qs = append(qs, q)
	}
	// Two identical questions: their requests are scored once.
	qs = append(qs, qs[0])
	qs[len(qs)-1].ID = "duplicate"
	return qs
}

func TestEvaluateBatchingDedupAndOrder(t *testing.T) {
	letters, _ := DefaultTask(Letters)
	qs := manyQuestions(40)
	var first *Run
	for _, bs := range []int{1, 7, 32} {
		sc := &fakeScorer{ll: map[string]float64{}}
		run, err := Evaluate(qs, Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: sc, BatchSize: bs, ChunkRequests: 50})
		if err != nil {
			t.Fatal(err)
		}
		var all []Request
		for _, c := range sc.requests {
			if len(c) > 50 {
				t.Errorf("a chunk of %d requests exceeds ChunkRequests", len(c))
			}
			all = append(all, c...)
		}
		if len(all) != 40*4 || run.Requests != 160 {
			t.Errorf("scored %d requests (%d unique), want 160 (the duplicate question shares them)", len(all), run.Requests)
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if len(a.Context)+len(a.Continuation) < len(b.Context)+len(b.Continuation) {
				t.Fatalf("requests not sorted longest first at %d", i)
			}
		}
		// Same-context requests (the four letters of a question) are adjacent.
		for i := 0; i < len(all); i += 4 {
			for j := 1; j < 4; j++ {
				if !slices.Equal(all[i].Context, all[i+j].Context) {
					t.Fatalf("letters of one question not adjacent at %d", i)
				}
			}
		}
		if first == nil {
			first = run
			continue
		}
		if !reflect.DeepEqual(run.Samples, first.Samples) {
			t.Errorf("batch size %d changed the samples", bs)
		}
	}
}

func TestCacheResume(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.jsonl")
	letters, _ := DefaultTask(Letters)
	qs := manyQuestions(10)
	c, err := OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	opt := Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: &fakeScorer{}, ModelKey: "m1", Cache: c, Limit: 5, Progress: &progress}
	first, err := Evaluate(qs, opt)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 20 || first.Cached != 0 || len(first.Samples) != 5 {
		t.Fatalf("cache has %d entries, %d cached, %d samples", c.Len(), first.Cached, len(first.Samples))
	}
	if !strings.Contains(progress.String(), "20/20") {
		t.Errorf("progress output %q", progress.String())
	}
	c.Close()
	// A torn last line (an interrupted write) is cut; earlier lines survive.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"key":"abc","logp`)
	f.Close()
	c, err = OpenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := &fakeScorer{}
	opt.Cache, opt.Scorer, opt.Limit, opt.Progress = c, sc, 10, nil
	second, err := Evaluate(qs, opt)
	if err != nil {
		t.Fatal(err)
	}
	if second.Cached != 20 || len(sc.requests) != 1 || len(sc.requests[0]) != 20 {
		t.Errorf("resume: %d cached, scorer saw %v chunks", second.Cached, len(sc.requests))
	}
	if !reflect.DeepEqual(second.Samples[:5], first.Samples) {
		t.Error("cached results differ from the first run")
	}
	// Another model hash misses the cache entirely.
	sc = &fakeScorer{}
	opt.ModelKey, opt.Scorer = "m2", sc
	third, _ := Evaluate(qs, opt)
	if third.Cached != 0 {
		t.Errorf("a different model hit the cache %d times", third.Cached)
	}
	c.Close()
	data, _ := os.ReadFile(path)
	if !bytes.HasSuffix(data, []byte("\n")) || bytes.Contains(data, []byte(`"logp{`)) {
		t.Error("torn line not removed")
	}
	// A corrupt line in the middle is an error naming the file and line.
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines[2] = []byte("not json\n")
	os.WriteFile(path, bytes.Join(lines, nil), 0o644)
	if _, err := OpenCache(path); err == nil || !strings.Contains(err.Error(), path+":3") {
		t.Errorf("corrupt cache: %v", err)
	}
	if _, err := Evaluate(qs, Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: sc, Cache: c}); err == nil {
		t.Error("a cache without a model key was accepted")
	}
}

// fakeRetriever returns fixed passages, best first.
type fakeRetriever struct{ passages []Passage }

func (f fakeRetriever) Retrieve(query string, k int) ([]Passage, error) {
	return f.passages[:min(k, len(f.passages))], nil
}

func TestRetrievedContextFitting(t *testing.T) {
	letters, _ := DefaultTask(Letters)
	q := []curriculum.Question{{ID: "r1", Question: "Which colour?", Choices: []string{"red", "green", "blue", "teal"}, Answer: 0,
		Kind: curriculum.KindDocumentOnly, ChunkID: "c2"}}
	ret := fakeRetriever{[]Passage{
		{ID: "c1", Text: strings.Repeat("one ", 10)}, {ID: "c2", Text: strings.Repeat("two ", 10)}, {ID: "c3", Text: strings.Repeat("three ", 10)},
	}}
	prompt, _ := letters.Prompt(&q[0])
	// Room for the prompt, the " A" continuation and two passages (40 bytes each + "\n\n" separators), not three.
	window := len(prompt) + 1 + 2 + (40+2)*2 + 1
	enc := Encoder{Tokenizer: byteTokenizer{}, MaxLength: window}
	run, err := Evaluate(q, Options{Task: letters, Encoder: enc, Scorer: &fakeScorer{}, Retriever: ret, K: 3})
	if err != nil {
		t.Fatal(err)
	}
	s := run.Samples[0]
	if !slices.Equal(s.Retrieved, []string{"c1", "c2"}) || s.PassagesCut != 1 || s.TruncatedTokens != 0 {
		t.Errorf("retrieved %v, cut %d, truncated %d", s.Retrieved, s.PassagesCut, s.TruncatedTokens)
	}
	if !strings.HasPrefix(s.Prompt, ret.passages[0].Text+"\n\n"+ret.passages[1].Text+"\n\n"+prompt[:5]) {
		t.Errorf("prompt %q", s.Prompt)
	}
	if s.ChunkRecalled == nil || !*s.ChunkRecalled {
		t.Error("the source chunk was retrieved but not counted")
	}
	// A window too small for any passage: all cut, then the harness's left truncation, counted.
	enc.MaxLength = len(prompt) - 5
	run, err = Evaluate(q, Options{Task: letters, Encoder: enc, Scorer: &fakeScorer{}, Retriever: ret, K: 3})
	if err != nil {
		t.Fatal(err)
	}
	s = run.Samples[0]
	if len(s.Retrieved) != 0 || s.PassagesCut != 3 || s.TruncatedTokens == 0 || *s.ChunkRecalled {
		t.Errorf("retrieved %v, cut %d, truncated %d", s.Retrieved, s.PassagesCut, s.TruncatedTokens)
	}
	res, _ := run.Results(1)
	rt := res.Perpetual["perpetual_letters"].Retrieval
	if rt == nil || rt.PassagesCut != 3 || rt.QuestionsWithCut != 1 || rt.RecallN != 1 || rt.RecallAtK != 0 {
		t.Errorf("retrieval summary %+v", rt)
	}
}

func TestOutputFilesAndCompare(t *testing.T) {
	cloze, _ := DefaultTask(Cloze)
	run, err := Evaluate(questionsForMetrics(), Options{Task: cloze, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: metricScorer(), Model: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := run.WriteFiles(dir, 3); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results  map[string]map[string]any `json:"results"`
		NSamples map[string]map[string]int `json:"n-samples"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none", "acc_bytes,none"} {
		if _, ok := res.Results["perpetual_cloze"][k]; !ok {
			t.Errorf("results.json lacks %q", k)
		}
	}
	if res.NSamples["perpetual_cloze"]["effective"] != 3 {
		t.Errorf("n-samples %v", res.NSamples)
	}
	samples, err := ReadSamples(filepath.Join(dir, "samples_perpetual_cloze.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(samples, run.Samples) {
		t.Errorf("samples do not round-trip:\n%+v\n%+v", samples, run.Samples)
	}
	cmp, err := Compare(samples, run.Samples, 100, 1)
	if err != nil || cmp.Bootstrap.Diff != 0 || cmp.McNemar.P != 1 || cmp.N != 3 {
		t.Errorf("self-comparison %+v %v", cmp, err)
	}
	better := slices.Clone(run.Samples)
	better[0].Acc, better[1].Acc = 1, 1
	cmp, _ = Compare(run.Samples, better, 100, 1)
	if cmp.McNemar.OnlyB != 2 || cmp.Acc <= cmp.BaseAcc || cmp.Bootstrap.Diff != 2.0/3 {
		t.Errorf("comparison %+v", cmp)
	}
	if cmp, err := Compare(run.Samples, better[:2], 100, 1); err != nil || cmp.N != 2 {
		t.Errorf("comparison on a subset of the base: %+v %v", cmp, err)
	}
	better[2].Doc.ID = "elsewhere"
	if _, err := Compare(run.Samples, better, 100, 1); err == nil || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("a question missing from the base: %v", err)
	}
}

// alwaysScorer prefers the continuation " B" whatever the prompt.
type alwaysScorer struct{ letter string }

func (a alwaysScorer) LogLikelihood(reqs []Request, _ int) ([]Result, error) {
	out := make([]Result, len(reqs))
	for i, r := range reqs {
		out[i] = Result{LogProb: -5, NumTokens: len(r.Continuation)}
		if decode(r.Continuation) == " "+a.letter {
			out[i].LogProb = -1
		}
	}
	return out, nil
}

func TestAlwaysBOnPerpetualProducts(t *testing.T) {
	path := filepath.Join("..", "..", "shared", "datasets", "perpetual", "products", "test.json")
	testenv.File(t, "the Perpetual reference data", path)
	qs, _, err := LoadTest(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2391 {
		t.Fatalf("%d questions, want 2391", len(qs))
	}
	letters, _ := DefaultTask(Letters)
	run, err := Evaluate(qs, Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: alwaysScorer{"B"}, BatchSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := run.Results(len(qs))
	acc := res.Results["perpetual_letters"]["acc,none"].(float64)
	always := res.Perpetual["perpetual_letters"].Baselines.Always["B"]
	if acc < 0.39 || acc > 0.41 || acc != always {
		t.Errorf("always-B accuracy %v, baseline %v; want about 0.40 and equal", acc, always)
	}
	t.Logf("always-B on products: %.4f (n=%d)", acc, len(qs))
}

func TestLoadTestShapes(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadTest(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
	if _, _, err := LoadTest(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("empty folder: %v", err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"id":"a","question":"q","choices":["x","y"],"answer":0,"kind":"seen"}`+"\n"+`{"id":"b","question":"q","choices":["x"],"answer":0,"kind":"seen"}`+"\n"), 0o644)
	if _, _, err := LoadTest(bad); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Errorf("bad jsonl: %v", err)
	}
	perp := filepath.Join(dir, "test.json")
	os.WriteFile(perp, []byte(`[{"question": "Q?", "choices": ["A) x", "B) y"], "answer": "B"}]`), 0o644)
	qs, _, err := LoadTest(perp)
	if err != nil || len(qs) != 1 || qs[0].Choices[0] != "x" || qs[0].Answer != 1 {
		t.Errorf("perpetual test.json: %v %+v", err, qs)
	}
	c := &curriculum.Curriculum{Chunks: []curriculum.Chunk{{ID: "c1", Text: "text"}}, Test: qs}
	c.Test[0].ChunkID = "c1"
	cdir := filepath.Join(dir, "cur")
	if err := curriculum.Write(cdir, c); err != nil {
		t.Fatal(err)
	}
	qs2, chunks, err := LoadTest(cdir)
	if err != nil || len(qs2) != 1 || len(chunks) != 1 {
		t.Errorf("curriculum folder: %v %d %d", err, len(qs2), len(chunks))
	}
}

func TestJobBothFormulationsAndBaseComparison(t *testing.T) {
	dir := t.TempDir()
	test := filepath.Join(dir, "test.jsonl")
	var buf bytes.Buffer
	for _, q := range manyQuestions(12)[:12] {
		line, _ := json.Marshal(q)
		buf.Write(append(line, '\n'))
	}
	os.WriteFile(test, buf.Bytes(), 0o644)
	enc := Encoder{Tokenizer: byteTokenizer{}}
	base := Job{Test: test, Out: filepath.Join(dir, "base"), BatchSize: 4}
	if _, err := base.Run(alwaysScorer{"A"}, enc, "always-A", "a"); err != nil {
		t.Fatal(err)
	}
	cond := Job{Test: test, Out: filepath.Join(dir, "cond"), Base: base.Out, BootstrapIterations: 200}
	out, err := cond.Run(alwaysScorer{"B"}, enc, "always-B", "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Runs) != 2 || out.Runs[0].Task.Name != "perpetual_letters" || out.Runs[1].Task.Name != "perpetual_cloze" {
		t.Fatalf("runs %v", out.Runs)
	}
	for _, f := range []string{"results.json", "samples_perpetual_letters.jsonl", "samples_perpetual_cloze.jsonl", "cache.jsonl", "comparison.json"} {
		if _, err := os.Stat(filepath.Join(cond.Out, f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
	c := out.Comparisons["perpetual_letters"]
	// Answers cycle A..D: always-A gets 3 of 12, always-B gets 3 of 12, all 6 discordant.
	if c.N != 12 || c.BaseAcc != 0.25 || c.Acc != 0.25 || c.McNemar.OnlyA != 3 || c.McNemar.OnlyB != 3 {
		t.Errorf("comparison %+v", c)
	}
	if s := out.Summary(); !strings.Contains(s, "perpetual_letters") || !strings.Contains(s, "vs base") {
		t.Errorf("summary %q", s)
	}
	// A cloze choice longer than the window fails that task; the letters results are kept.
	small := Encoder{Tokenizer: byteTokenizer{}, MaxLength: 60}
	long := filepath.Join(dir, "long.jsonl")
	os.WriteFile(long, []byte(`{"id":"l","question":"q?","choices":["short","b","c","`+strings.Repeat("long ", 14)+`"],"answer":0,"kind":"seen"}`+"\n"), 0o644)
	partial := Job{Test: long, Out: filepath.Join(dir, "partial")}
	if _, err := partial.Run(alwaysScorer{"A"}, small, "m", "m"); err == nil || !strings.Contains(err.Error(), "more than the model's 60") {
		t.Errorf("over-long cloze choice: %v", err)
	}
	if _, err := os.Stat(filepath.Join(partial.Out, SamplesFile("perpetual_letters"))); err != nil {
		t.Errorf("letters results lost after the cloze failure: %v", err)
	}
	if _, err := (Job{Test: filepath.Join(dir, "nope.jsonl"), Out: dir}).Run(alwaysScorer{"A"}, enc, "", ""); err == nil {
		t.Error("a missing test file was accepted")
	}
}

func TestChatTemplateInEvaluate(t *testing.T) {
	letters, _ := DefaultTask(Letters)
	letters.ChatTemplate = "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
	sc := &fakeScorer{}
	q := []curriculum.Question{{ID: "c", Question: "one", Choices: []string{"a", "b", "c", "d"}, Kind: curriculum.KindSeen}}
	run, err := Evaluate(q, Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: sc})
	if err != nil {
		t.Fatal(err)
	}
	s := run.Samples[0]
	if !strings.HasPrefix(s.Prompt, "<start_of_turn>user\none\nA. a") || !strings.HasSuffix(s.Prompt, "<start_of_turn>model\n") {
		t.Errorf("prompt %q", s.Prompt)
	}
	// The template's trailing newline moved into the continuation, as the harness does.
	if got := decode(sc.requests[0][0].Continuation); got != "\n A" && got != "\n B" {
		t.Errorf("continuation %q", got)
	}
}

// slowScorer takes a known minimum time per call, so the progress bar's rate has an upper bound.
type slowScorer struct {
	fakeScorer
	delay time.Duration
}

func (s *slowScorer) LogLikelihood(reqs []Request, batchSize int) ([]Result, error) {
	time.Sleep(s.delay)
	return s.fakeScorer.LogLikelihood(reqs, batchSize)
}

// The bar's clock starts when scoring starts, not at its first update: a single chunk of 20
// requests that takes at least 50 ms can not be reported faster than 400 requests a second.
func TestProgressRateIsReal(t *testing.T) {
	letters, _ := DefaultTask(Letters)
	var progress bytes.Buffer
	opt := Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: &slowScorer{delay: 50 * time.Millisecond},
		ModelKey: "m1", Limit: 5, Progress: &progress}
	if _, err := Evaluate(manyQuestions(10), opt); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`20/20, ([0-9.]+) req/s`).FindAllStringSubmatch(progress.String(), -1)
	if len(m) == 0 {
		t.Fatalf("no final rate in progress output %q", progress.String())
	}
	rate, err := strconv.ParseFloat(m[len(m)-1][1], 64)
	if err != nil || rate > 400 {
		t.Errorf("final rate %q req/s, want at most 400 (output %q)", m[len(m)-1][1], progress.String())
	}
}
