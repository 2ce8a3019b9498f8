package evaluation

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// Tests for issue 16: the last differences from lm-evaluation-harness.

// writeFiles writes name -> content into dir, removing files whose content is "".
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if content == "" {
			os.Remove(path)
			continue
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The window as HFLM.max_length resolves it: the config's length fields in the harness's order,
// then a real tokenizer model_max_length, then 2048.
func TestResolveMaxLength(t *testing.T) {
	dir := t.TempDir()
	check := func(window, want int, wantSource string) {
		t.Helper()
		got, src, err := ResolveMaxLength(dir, window)
		if err != nil || got != want || !strings.Contains(src, wantSource) {
			t.Errorf("window %d: got %d (%q, %v), want %d (%q)", window, got, src, err, want, wantSource)
		}
	}
	// Mamba: no window, no config field, no tokenizer_config.json: the harness's 2048.
	writeFiles(t, dir, map[string]string{"config.json": `{"model_type": "mamba", "hidden_size": 16}`})
	check(0, DefaultMaxLength, "default")
	// The architecture's own window wins (Gemma's max_position_embeddings).
	check(64, 64, "window")
	// transformers' "unset" model_max_length (int(1e30)) is ignored, as the harness does.
	writeFiles(t, dir, map[string]string{"tokenizer_config.json": `{"model_max_length": 1000000000000000019884624838656}`})
	check(0, 2048, "default")
	writeFiles(t, dir, map[string]string{"tokenizer_config.json": `{"model_max_length": 1e30}`})
	check(0, 2048, "default")
	// A real model_max_length is honoured; a huge one means no truncation.
	writeFiles(t, dir, map[string]string{"tokenizer_config.json": `{"model_max_length": 512, "add_bos_token": false}`})
	check(0, 512, "tokenizer_config.json")
	writeFiles(t, dir, map[string]string{"tokenizer_config.json": `{"model_max_length": 1e20}`})
	check(0, 0, "unbounded")
	// Config fields come before the tokenizer, in the order n_positions, max_position_embeddings, n_ctx.
	writeFiles(t, dir, map[string]string{"config.json": `{"n_ctx": 1024, "max_position_embeddings": 4096, "n_positions": null}`})
	check(0, 4096, "max_position_embeddings")
	writeFiles(t, dir, map[string]string{"config.json": `{"n_ctx": 1024}`})
	check(0, 1024, "n_ctx")
	// Nonsense is an error naming the file and the field.
	for files, want := range map[[2]string]string{
		{`{"n_ctx": "long"}`, ``}:                              "config.json: n_ctx",
		{`{"n_positions": -3}`, ``}:                            "config.json: n_positions",
		{`{}`, `{"model_max_length": 0}`}:                      "tokenizer_config.json: model_max_length",
		{`{}`, `{"model_max_length": "big"}`}:                  "tokenizer_config.json: model_max_length",
		{`{"n_ctx": `, ``}:                                     "config.json",
		{`{}`, `{"model_max_length": 12.5, "bos_token": "x"}`}: "model_max_length",
	} {
		writeFiles(t, dir, map[string]string{"config.json": files[0], "tokenizer_config.json": files[1]})
		if _, _, err := ResolveMaxLength(dir, 0); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v, want one naming %q", files, err, want)
		}
	}
}

// lm-eval's max_length and add_bos_token model arguments: validated, and an explicit value wins.
func TestEncodingOptions(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"tokenizer_config.json": `{"add_bos_token": false}`})
	for _, bad := range []EncodingOptions{{MaxLength: -1}, {AddBOS: "yes"}, {AddBOS: "True"}} {
		if _, err := bad.Resolve(dir, "mamba", 0); err == nil || !strings.Contains(err.Error(), map[bool]string{true: "max_length", false: "add_bos_token"}[bad.MaxLength < 0]) {
			t.Errorf("%+v: error %v", bad, err)
		}
	}
	resolve := func(o EncodingOptions, family string, window int) Encoding {
		t.Helper()
		e, err := o.Resolve(dir, family, window)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		return e
	}
	if e := resolve(EncodingOptions{}, "mamba", 0); e.MaxLength != DefaultMaxLength || e.AddBOS {
		t.Errorf("mamba defaults: %+v", e)
	}
	if e := resolve(EncodingOptions{MaxLength: 100, AddBOS: BOSTrue}, "mamba", 0); e.MaxLength != 100 || !e.AddBOS || !strings.Contains(e.MaxLengthSource, "option") {
		t.Errorf("explicit: %+v", e)
	}
	if e := resolve(EncodingOptions{AddBOS: BOSFalse}, "gemma", 64); e.AddBOS || e.MaxLength != 64 {
		t.Errorf("gemma without BOS: %+v", e)
	}
	if e := resolve(EncodingOptions{AddBOS: BOSAuto, MaxLength: 32}, "gemma", 64); !e.AddBOS || e.MaxLength != 32 {
		t.Errorf("gemma auto, shorter window: %+v", e)
	}
	// More than the architecture can read is refused, not truncated again silently by the model.
	if _, err := (EncodingOptions{MaxLength: 65}).Resolve(dir, "gemma", 64); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Errorf("max_length over the window: %v", err)
	}
	// The resolved window truncates as the harness: a 3,000-token prompt keeps its last 2,049 tokens.
	e := resolve(EncodingOptions{}, "mamba", 0)
	enc := Encoder{Tokenizer: byteTokenizer{}, AddBOS: e.AddBOS, BOS: 2, MaxLength: e.MaxLength}
	prompt := strings.Repeat("x", 2991) + "?\nAnswer:"
	p, err := enc.EncodePair(prompt, " A")
	if err != nil || len(p.Context)+len(p.Continuation) != DefaultMaxLength+1 || p.Truncated != len(prompt)+2-(DefaultMaxLength+1) {
		t.Errorf("truncation: %d + %d tokens, truncated %d, %v", len(p.Context), len(p.Continuation), p.Truncated, err)
	}
}

// Under a chat template lm-eval scores the bare choice; the embedded tasks keep " " for the zoo.
func TestChatTargetDelimiter(t *testing.T) {
	const chat = "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
	q := []curriculum.Question{{ID: "c", Question: "one", Choices: []string{"a", "b", "c", "d"}, Kind: curriculum.KindSeen}}
	conts := func(task *Task) ([]string, []string) {
		t.Helper()
		sc := &fakeScorer{}
		run, err := Evaluate(q, Options{Task: task, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: sc})
		if err != nil {
			t.Fatal(err)
		}
		var got, args []string
		for _, r := range sc.requests[0] {
			got = append(got, decode(r.Continuation))
		}
		for _, a := range run.Samples[0].Args {
			args = append(args, a[1])
		}
		slices.Sort(got)
		return got, args
	}
	yml := "task: chat_letters\ndoc_to_text: \"{question}\\nAnswer:\"\ndoc_to_choice: [A, B, C, D]\nchat_template: \"" +
		strings.ReplaceAll(chat, "\n", `\n`) + "\"\n"
	task, err := ParseTask([]byte(yml), "chat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A task that applies a chat template, as lm-eval's apply_chat_template: "A", not " A" (the
	// template's trailing newline still moves into the continuation, as the harness does).
	if got, args := conts(task); !slices.Equal(got, []string{"\nA", "\nB", "\nC", "\nD"}) || args[0] != "A" {
		t.Errorf("lm-eval chat continuations %q, arguments %q", got, args)
	}
	// The embedded tasks say " " explicitly, so the default suite scores what the zoo was trained on.
	letters, _ := DefaultTask(Letters)
	letters.ChatTemplate = chat
	if got, args := conts(letters); !slices.Equal(got, []string{"\n A", "\n B", "\n C", "\n D"}) || args[0] != " A" {
		t.Errorf("embedded task under a chat template: %q, arguments %q", got, args)
	}
	// A suite asking for lm-eval parity sets chat_target_delimiter "" over the embedded task.
	empty := ""
	TaskOptions{ChatTargetDelimiter: &empty}.Apply(letters)
	if got, _ := conts(letters); !slices.Equal(got, []string{"\nA", "\nB", "\nC", "\nD"}) {
		t.Errorf("embedded task with chat_target_delimiter \"\": %q", got)
	}
	// Without a chat template the target delimiter applies, whatever chat_target_delimiter says.
	letters.ChatTemplate = ""
	if got, _ := conts(letters); !slices.Equal(got, []string{" A", " B", " C", " D"}) {
		t.Errorf("no chat template: %q", got)
	}
	// Few-shot answers inside the prompt keep the target delimiter (lm-eval's fewshot_cfg).
	task.FewshotExamples = []curriculum.Question{{ID: "ex", Question: "ex", Choices: []string{"x", "y"}, Answer: 1}}
	task.NumFewshot = 1
	if p, _ := task.Prompt(&q[0]); !strings.HasPrefix(p, "ex\nAnswer: B\n\n") {
		t.Errorf("few-shot under a chat template: %q", p)
	}
}

// The paper's rendering: doc_to_text "{{question.strip()}}", passages stripped and joined by "\n".
func TestPaperStripping(t *testing.T) {
	q := curriculum.Question{ID: "s", Question: " \n Which colour?\x1c\u3000 ", Choices: []string{" red ", "b", "c", "d"}, Kind: curriculum.KindSeen}
	letters, _ := DefaultTask(Letters)
	// The default keeps the question as it is (the zoo was trained on this rendering).
	if p, _ := letters.Prompt(&q); !strings.HasPrefix(p, q.Question+"\nA.  red \nB.") {
		t.Errorf("default prompt %q", p)
	}
	nl := "\n"
	TaskOptions{StripQuestion: true, StripPassages: true, PassageDelimiter: &nl}.Apply(letters)
	if p, _ := letters.Prompt(&q); !strings.HasPrefix(p, "Which colour?\nA.  red \nB.") {
		t.Errorf("strip_question prompt %q", p)
	}
	// The Jinja spelling of the paper's YAML works too, on choices as well.
	task, err := ParseTask([]byte("task: paper\ndoc_to_text: \"{{question.strip()}} / {{ choices[0].strip() }}\"\ndoc_to_choice: [A, B, C, D]\n"), "paper.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := task.Prompt(&q); p != "Which colour? / red" {
		t.Errorf("{{question.strip()}} prompt %q", p)
	}
	if got := pyStrip("\x1f\t\u00a0x y\u2028\x1c"); got != "x y" {
		t.Errorf("pyStrip %q", got)
	}
	if got := pyStrip("\u200bx"); got != "\u200bx" {
		t.Errorf("pyStrip trimmed a zero-width space, which Python keeps: %q", got)
	}
	// Passages: stripped, joined by one newline, then the context template's "\n\n".
	ret := fakeRetriever{[]Passage{{ID: "c1", Text: "\n first passage. \n"}, {ID: "c2", Text: "  second.\n\n"}}}
	run, err := Evaluate([]curriculum.Question{q}, Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: &fakeScorer{}, Retriever: ret, K: 2})
	if err != nil {
		t.Fatal(err)
	}
	if p := run.Samples[0].Prompt; !strings.HasPrefix(p, "first passage.\nsecond.\n\nWhich colour?\nA.") {
		t.Errorf("paper passages prompt %q", p)
	}
	// The default joins them as they are with "\n\n".
	letters, _ = DefaultTask(Letters)
	run, err = Evaluate([]curriculum.Question{q}, Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}}, Scorer: &fakeScorer{}, Retriever: ret, K: 2})
	if err != nil {
		t.Fatal(err)
	}
	if p := run.Samples[0].Prompt; !strings.HasPrefix(p, ret.passages[0].Text+"\n\n"+ret.passages[1].Text+"\n\n"+q.Question) {
		t.Errorf("default passages prompt %q", p)
	}
	// Options parse from a task file too.
	task, err = ParseTask([]byte("task: p\ndoc_to_text: x\ndoc_to_choice: [A]\nstrip_question: true\nstrip_passages: true\npassage_delimiter: \"\\n\"\n"), "p.yaml")
	if err != nil || !task.StripQuestion || !task.StripPassages || task.PassageDelimiter != "\n" {
		t.Errorf("task fields: %+v %v", task, err)
	}
}

// The per-sample log records token ids, from which every request can be rebuilt.
func TestSampleTokenIDs(t *testing.T) {
	letters, _ := DefaultTask(Letters)
	q := []curriculum.Question{{ID: "t", Question: "Which one of these?", Choices: []string{"a", "b", "c", "d"}, Kind: curriculum.KindSeen}}
	const window = 20
	sc := &fakeScorer{}
	run, err := Evaluate(q, Options{Task: letters, Encoder: Encoder{Tokenizer: byteTokenizer{}, AddBOS: true, BOS: 2, MaxLength: window}, Scorer: sc})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := run.WriteFiles(dir, 1); err != nil {
		t.Fatal(err)
	}
	samples, err := ReadSamples(filepath.Join(dir, SamplesFile(letters.Name)))
	if err != nil {
		t.Fatal(err)
	}
	s := samples[0]
	if s.ContextTokenIDs[0] != 2 || decode(s.ContextTokenIDs) != strings.TrimRight(s.Prompt, " ") || len(s.ContinuationTokenIDs) != 4 || s.TruncatedTokens == 0 {
		t.Fatalf("token ids: context %v, continuations %v, truncated %d", s.ContextTokenIDs, s.ContinuationTokenIDs, s.TruncatedTokens)
	}
	sent := map[string]bool{}
	for _, r := range sc.requests[0] {
		sent[decode(r.Context)+"|"+decode(r.Continuation)] = true
	}
	for c, cont := range s.ContinuationTokenIDs {
		cut := max(0, len(s.ContextTokenIDs)+len(cont)-(window+1))
		if !sent[decode(s.ContextTokenIDs[cut:])+"|"+decode(cont)] || decode(cont) != s.Args[c][1] {
			t.Errorf("choice %d: rebuilt request %q + %q was not what the scorer saw", c, decode(s.ContextTokenIDs[cut:]), decode(cont))
		}
	}
}

// A cached result is reused only for the same tokens: a different max_length (when it truncates)
// or BOS setting gives different requests, hence different cache keys.
func TestCacheKeyCoversEncoding(t *testing.T) {
	letters, _ := DefaultTask(Letters)
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	qs := manyQuestions(3)
	run := func(enc Encoder) *Run {
		t.Helper()
		r, err := Evaluate(qs, Options{Task: letters, Encoder: enc, Scorer: &fakeScorer{}, ModelKey: "m", Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := Encoder{Tokenizer: byteTokenizer{}, BOS: 2}
	if r := run(base); r.Cached != 0 {
		t.Fatalf("fresh cache hit %d times", r.Cached)
	}
	if r := run(base); r.Cached != r.Requests {
		t.Errorf("same settings: %d of %d cached", r.Cached, r.Requests)
	}
	withBOS := base
	withBOS.AddBOS = true
	short := base
	short.MaxLength = 10
	roomy := base
	roomy.MaxLength = 1000 // truncates nothing: the same requests, rightly cached
	for name, enc := range map[string]Encoder{"add_bos_token": withBOS, "max_length 10": short} {
		if r := run(enc); r.Cached != 0 {
			t.Errorf("%s: %d stale results reused", name, r.Cached)
		}
	}
	if r := run(roomy); r.Cached != r.Requests {
		t.Errorf("a window that truncates nothing: %d of %d cached", r.Cached, r.Requests)
	}
}
