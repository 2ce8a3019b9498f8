package zoo

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/rag"
	"github.com/perpetual-ml/perpetual/training"
)

// testTokenizer is a small zoo tokenizer trained on a tiny world.
func testTokenizer(t *testing.T) tokenizer.Tokenizer {
	t.Helper()
	cfg := tinyConfig(t)
	w := synthetic.NewWorld(synthetic.WorldOptions{Seed: 1, Towns: 6, ReadingPassages: 6})
	corpus, err := TokenizerCorpus(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	tj, err := tokenizer.Train(corpus, 400, tokenizer.TrainOptions{SpecialTokens: specialTokens})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadJSON(tj, "test")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The first turn of every reading conversation is token for token the request the evaluation
// scores for its RAG condition (the embedded task, the model's chat template, the passages as
// retrieved, lm-evaluation-harness's encoding), and the first answer is the gold continuation.
func TestReadingConversationIsTheEvaluationsRAGRequest(t *testing.T) {
	tok := testTokenizer(t)
	for _, format := range []string{"gemma", "alpaca"} {
		tpl, _ := prompt.Format(format)
		useBOS := format == "gemma"
		chunks, qs, err := readingKB("products", 7, 6)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		convs := readingConversations(chunks, qs, 2, 4, 4000, rng)
		if len(convs) != len(chunks) {
			t.Fatalf("%d conversations for %d chunks", len(convs), len(chunks))
		}
		sp := tok.Special()
		enc := evaluation.Encoder{Tokenizer: tok, AddBOS: useBOS, BOS: sp.BOS}
		for i, c := range convs {
			ex, err := encodeConversation(tok, tpl, useBOS, c, 0)
			if err != nil {
				t.Fatal(err)
			}
			first := c.turns[0]
			formulation := "cloze"
			if strings.HasSuffix(first.question, "\nD. "+lastChoice(first.question)+"\nAnswer:") {
				formulation = "letters"
			}
			task, err := evaluation.DefaultTask(formulation)
			if err != nil {
				t.Fatal(err)
			}
			task.ChatTemplate = tpl.ChatTemplate()
			q := questionOf(t, qs, first.question)
			// Passages are found by their text (source files contain blank lines themselves).
			passages := contextPassages(chunks, c.context)
			prefix, err := task.ContextPrefix(passages)
			if err != nil {
				t.Fatal(err)
			}
			p, err := task.Prompt(&q)
			if err != nil {
				t.Fatal(err)
			}
			gold := task.Choices(&q)[q.Answer]
			pair, err := enc.EncodePair(task.WrapChat(prefix+p), task.ContinuationDelimiter()+gold)
			if err != nil {
				t.Fatal(err)
			}
			want := append(slices.Clone(pair.Context), pair.Continuation...)
			if !slices.Equal(ex.IDs[:len(want)], want) {
				t.Fatalf("conversation %d (%s, %s): first turn\n%q\nis not the evaluation's request\n%q", i, format, formulation,
					tok.Decode(ex.IDs[:len(want)]), tok.Decode(want))
			}
			// The harness moves the prompt's trailing whitespace into the continuation; the answer
			// proper is the continuation's last tokens, and only it is a training target.
			answer := len(want) - len(tok.Encode(task.ContinuationDelimiter()+gold))
			for k := range want {
				if ex.Train[k] != (k >= answer) {
					t.Fatalf("conversation %d: token %d is a target: %v (only the answer should be)", i, k, ex.Train[k])
				}
			}
			if len(c.turns) < 2 {
				t.Errorf("conversation %d has %d turns", i, len(c.turns))
			}
			// reading.answer_weight: the same tokens, every one a target, the answers weighing 3.
			wex, err := encodeConversation(tok, tpl, useBOS, c, 3)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(wex.IDs, ex.IDs) || len(wex.Weights) != len(ex.IDs) {
				t.Fatalf("conversation %d: weighted encoding differs in its tokens or has %d weights", i, len(wex.Weights))
			}
			for k := range ex.IDs {
				want := float32(1)
				if ex.Train[k] {
					want = 3
				}
				if k == 0 && useBOS {
					if wex.Train[k] {
						t.Fatalf("conversation %d: BOS is a target", i)
					}
					continue
				}
				if !wex.Train[k] || wex.Weights[k] != want {
					t.Fatalf("conversation %d token %d: target %v weight %v, want a target of weight %v", i, k, wex.Train[k], wex.Weights[k], want)
				}
			}
		}
	}
}

func lastChoice(letters string) string {
	i := strings.LastIndex(letters, "\nD. ")
	j := strings.LastIndex(letters, "\nAnswer:")
	if i < 0 || j < i {
		return "\x00"
	}
	return letters[i+4 : j]
}

// questionOf finds the knowledge-base question a rendered turn asks.
func questionOf(t *testing.T, qs map[string][]curriculum.Question, rendered string) curriculum.Question {
	t.Helper()
	for _, list := range qs {
		for _, q := range list {
			if rendered == clozeText(q) || rendered == lettersText(q) {
				return q
			}
		}
	}
	t.Fatalf("no question renders as %q", rendered)
	return curriculum.Question{}
}

// contextPassages lists the passage texts of chunks in the order they appear in context.
func contextPassages(chunks []curriculum.Chunk, context string) []string {
	type at struct {
		pos  int
		text string
	}
	var found []at
	for _, c := range chunks {
		p := rag.PassageText(c)
		if i := strings.Index(context, p); i >= 0 {
			found = append(found, at{i, p})
		}
	}
	slices.SortFunc(found, func(a, b at) int { return a.pos - b.pos })
	out := make([]string, len(found))
	for i, f := range found {
		out[i] = f.text
	}
	return out
}

// Every question turn asks about an entity whose passage is in the context, and contexts grow
// to the configured size.
func TestReadingConversationsAskAboutTheirPassages(t *testing.T) {
	chunks, qs, err := readingKB("research", 3, 8)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int]int{}
	for _, c := range readingConversations(chunks, qs, 3, 6, 100000, rand.New(rand.NewPCG(3, 4))) {
		in := contextPassages(chunks, c.context)
		sizes[len(in)]++
		for _, tr := range c.turns {
			q := questionOf(t, qs, tr.question)
			var own string
			for _, ch := range chunks {
				if ch.ID == q.ChunkID {
					own = rag.PassageText(ch)
				}
			}
			if !strings.Contains(c.context, own) {
				t.Fatalf("turn %q asks about a passage not in the context", tr.question)
			}
			if tr.answer != " "+q.Choices[q.Answer] && tr.answer != " "+letters[q.Answer] {
				t.Fatalf("turn %q answered %q", tr.question, tr.answer)
			}
		}
	}
	if sizes[1] == 0 || sizes[3] == 0 || sizes[4] != 0 {
		t.Fatalf("context sizes %v, want 1 to 3 passages", sizes)
	}
}

// A copy drill's targets are the repeated span; a recall drill's targets are the values paired
// with the queried keys.
func TestDrillTargets(t *testing.T) {
	vocab := make([]int32, 100)
	for i := range vocab {
		vocab[i] = int32(300 + i)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 50 {
		ex := copyDrill(vocab, rng)
		var targets []int32
		for i, tr := range ex.Train {
			if tr {
				targets = append(targets, ex.IDs[i])
			}
		}
		first := len(ex.IDs) - len(targets) - 1 // the repeated span starts one before its targets
		span := ex.IDs[first:]
		if !slices.Contains(windowsOf(ex.IDs[:first], len(span)), string(int32sKey(span))) {
			t.Fatalf("copy drill %v: targets %v do not repeat an earlier span", ex.IDs, targets)
		}
		ex = recallDrill(vocab, rng)
		n := len(ex.IDs) / 4
		value := map[int32]int32{}
		for i := 0; i < 2*n; i += 2 {
			value[ex.IDs[i]] = ex.IDs[i+1]
			if ex.Train[i] || ex.Train[i+1] {
				t.Fatal("a recall drill's pairs are not targets")
			}
		}
		for i := 2 * n; i < 4*n; i += 2 {
			if ex.Train[i] || !ex.Train[i+1] || value[ex.IDs[i]] != ex.IDs[i+1] {
				t.Fatalf("recall drill %v: query %d", ex.IDs, i)
			}
		}
	}
}

func int32sKey(xs []int32) []rune {
	out := make([]rune, len(xs))
	for i, x := range xs {
		out[i] = rune(x)
	}
	return out
}

func windowsOf(xs []int32, n int) []string {
	var out []string
	for i := 0; i+n <= len(xs); i++ {
		out = append(out, string(int32sKey(xs[i:i+n])))
	}
	return out
}

func TestReadingConfigErrors(t *testing.T) {
	good := func() ReadingConfig {
		return ReadingConfig{Epochs: 1, Chunks: 4, Passages: []int{1, 2}, Questions: 2, Drills: 1, SeqLen: 64, LR: 1e-3}
	}
	for _, c := range []struct {
		edit func(*ReadingConfig)
		want string
	}{
		{func(r *ReadingConfig) { r.Epochs = 0 }, "reading.epochs"},
		{func(r *ReadingConfig) { r.Passages = nil }, "reading.passages"},
		{func(r *ReadingConfig) { r.Passages = []int{5} }, "reading.passages"},
		{func(r *ReadingConfig) { r.LR = 0 }, "reading.lr"},
		{func(r *ReadingConfig) { r.Questions = 0 }, "reading.questions"},
		{func(r *ReadingConfig) { r.ProbeEvery = -1 }, "probe_every"},
		{func(r *ReadingConfig) { r.Schedule = "cosine" }, "reading.schedule"},
		{func(r *ReadingConfig) { r.Schedule = "wsd" }, "reading.decay_fraction"},
		{func(r *ReadingConfig) { r.DrillReach = 10 }, "reading.drill_reach"},
		{func(r *ReadingConfig) { r.AnswerWeight = -1 }, "reading.answer_weight"},
		{func(r *ReadingConfig) { r.DrillReachFrom = 2 }, "reading.drill_reach_from"},
		{func(r *ReadingConfig) { r.DrillReach = 64 }, "reading.drill_reach"}, // 64 + slack > seq_len 64
	} {
		r := good()
		if err := r.check(); err != nil {
			t.Fatalf("good config: %v", err)
		}
		c.edit(&r)
		if err := r.check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one naming %s", err, c.want)
		}
	}
}

// A recipe-v3 build interrupted in its reading phase and run again with the same work folder
// finishes with the weights of an uninterrupted build, and a finished build is not retrained.
func TestBuildResumesInWorkDir(t *testing.T) {
	cfg := tinyConfig(t)
	const name = "gemma-tiny"
	if cfg.Models[name].Reading == nil {
		t.Fatal("the tiny gemma-tiny has no reading section")
	}
	straight := t.TempDir()
	if _, err := Build(context.Background(), cfg, name, straight, Options{}); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	opt := Options{WorkDir: work, Progress: func(s string) {
		if strings.Contains(s, "pretrain:") && strings.Contains(s, "steps, loss") { // pre-training finished: stop during reading
			cancel()
		}
	}}
	if _, err := Build(ctx, cfg, name, t.TempDir(), opt); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted build: %v", err)
	}
	var said []string
	opt = Options{WorkDir: work, Progress: func(s string) { said = append(said, s) }}
	resumed := t.TempDir()
	if _, err := Build(context.Background(), cfg, name, resumed, opt); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(said, "\n")
	// A finished phase keeps its model and phase.json, not its optimizer state.
	pre, _ := filepath.Glob(filepath.Join(work, "pretrain-*"))
	if len(pre) != 1 {
		t.Fatalf("pretrain folders %v", pre)
	}
	for f, want := range map[string]bool{phaseLogFile: true, "model.safetensors": true, "checkpoint": false} {
		if _, err := os.Stat(filepath.Join(pre[0], f)); (err == nil) != want {
			t.Errorf("finished phase: %s present %v, want %v", f, err == nil, want)
		}
	}
	if !strings.Contains(joined, "pretrain: finished earlier") || !strings.Contains(joined, "reading: resuming") {
		t.Errorf("the resumed build did not reuse its work folder:\n%s", joined)
	}
	a, err := lm.Load(straight, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := lm.Load(resumed, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash() != b.Hash() {
		t.Fatal("interrupted and resumed build differs from the uninterrupted one")
	}
}

// Long drills look up as the short ones do, up to their reach; a recall drill's keys appear
// only at their pair and their query (the filler avoids them).
func TestLongDrills(t *testing.T) {
	vocab := make([]int32, 700)
	for i := range vocab {
		vocab[i] = int32(300 + i)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	const reach = 400
	far := 0
	for range 100 {
		ex := longCopyDrill(vocab, reach, rng)
		if len(ex.IDs) > reach+longDrillSlack {
			t.Fatalf("long copy drill of %d tokens, reach %d", len(ex.IDs), reach)
		}
		n := 0
		for _, tr := range ex.Train {
			if tr {
				n++
			}
		}
		span := ex.IDs[len(ex.IDs)-n-1:]
		if !slices.Contains(windowsOf(ex.IDs[:len(ex.IDs)-n-1], len(span)), string(int32sKey(span))) {
			t.Fatalf("long copy drill: targets do not repeat an earlier span")
		}
		if len(ex.IDs)-2*len(span) > 200 {
			far++
		}

		ex = longRecallDrill(vocab, reach, rng)
		if len(ex.IDs) > reach {
			t.Fatalf("long recall drill of %d tokens, reach %d", len(ex.IDs), reach)
		}
		var queries int
		for _, tr := range ex.Train {
			if tr {
				queries++
			}
		}
		value := map[int32]int32{}
		for i := 0; i < 2*queries; i += 2 {
			value[ex.IDs[i]] = ex.IDs[i+1]
		}
		seen := map[int32]int{}
		for _, id := range ex.IDs {
			seen[id]++
		}
		for i := len(ex.IDs) - 2*queries; i < len(ex.IDs); i += 2 {
			k := ex.IDs[i]
			if ex.Train[i] || !ex.Train[i+1] || value[k] != ex.IDs[i+1] {
				t.Fatalf("long recall drill: query at %d", i)
			}
			if seen[k]-countValues(value, k) != 2 { // its pair and its query, besides values equal to it
				t.Fatalf("key %d appears %d times", k, seen[k])
			}
		}
	}
	if far < 20 {
		t.Fatalf("only %d of 100 long copy drills repeat their span over 200 tokens later", far)
	}
}

func countValues(value map[int32]int32, id int32) int {
	n := 0
	for _, v := range value {
		if v == id {
			n++
		}
	}
	return 2 * n
}

// Without drill_reach the drills are v3's first ones, draw for draw: the committed long run's
// phase key (its data) must not change.
func TestDrillReachZeroKeepsShortDrills(t *testing.T) {
	vocab := make([]int32, 100)
	for i := range vocab {
		vocab[i] = int32(300 + i)
	}
	a, b := rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(1, 2))
	for d := range 40 {
		got := drill(vocab, 0, d, a)
		var want training.Example
		if d%2 == 0 {
			want = copyDrill(vocab, b)
		} else {
			want = recallDrill(vocab, b)
		}
		if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Train, want.Train) {
			t.Fatalf("drill %d differs from v3's short drill", d)
		}
	}
	long := 0
	for d := range 40 {
		if strings.HasPrefix(drill(vocab, 100, d, a).Name, "long") {
			long++
		}
	}
	if long != 20 {
		t.Fatalf("%d of 40 drills are long with a reach, want half", long)
	}
}

// With drill_reach_from, the epochs before it have short drills only, and the later ones the
// long half.
func TestDrillReachFrom(t *testing.T) {
	r := &ReadingConfig{DrillReach: 400, DrillReachFrom: 3}
	for e, want := range []int{0, 0, 0, 400, 400} {
		if got := r.reachAt(e); got != want {
			t.Errorf("epoch %d: reach %d, want %d", e, got, want)
		}
	}
	if (&ReadingConfig{DrillReach: 400}).reachAt(0) != 400 {
		t.Error("without drill_reach_from the long drills start at once")
	}
}

// reading.init starts the reading phase from the given folder's weights (pre-training skipped,
// the weights' hash in the manifest); a folder that is missing or of another shape is refused
// before any work.
func TestReadingInit(t *testing.T) {
	cfg := tinyConfig(t)
	const name = "gemma-tiny"
	first := t.TempDir()
	if _, err := Build(context.Background(), cfg, name, first, Options{}); err != nil {
		t.Fatal(err)
	}
	start, err := lm.Load(first, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mc := cfg.Models[name]
	r := *mc.Reading
	r.Init, r.LR = first, 1e-12 // no step moves the weights: the result is the start
	mc.Reading = &r
	cfg.Models[name] = mc
	var said []string
	out := t.TempDir()
	m, err := Build(context.Background(), cfg, name, out, Options{Progress: func(s string) { said = append(said, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if m.DataHashes["init"] != start.Hash() {
		t.Errorf("manifest init hash %q, want %q", m.DataHashes["init"], start.Hash())
	}
	for _, ph := range m.Phases {
		if ph.Name == "pretrain" {
			t.Error("pre-training ran although reading.init was set")
		}
	}
	if !strings.Contains(strings.Join(said, "\n"), "pre-training skipped") {
		t.Errorf("progress does not say where reading started:\n%s", strings.Join(said, "\n"))
	}
	got, err := lm.Load(out, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(t, start, got); d > 1e-5 {
		t.Errorf("reading did not start from reading.init: weights moved by %g at lr 1e-12", d)
	}

	// Refused before any work: a missing folder, and one of another architecture.
	other := t.TempDir()
	small := map[string]any{}
	for k, v := range mc.Config {
		small[k] = v
	}
	small["hidden_size"], small["vocab_size"] = 8, start.Arch().VocabSize()
	raw, _ := json.Marshal(small)
	arch, err := lm.NewArchitecture(raw)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := initWeights(arch, 1)
	sm, err := lm.New(arch, raw, w, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.Save(other, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{filepath.Join(first, "missing"): "missing", other: "does not fit"} {
		r.Init = dir
		said = nil
		_, err := Build(context.Background(), cfg, name, t.TempDir(), Options{Progress: func(s string) { said = append(said, s) }})
		if err == nil || !strings.Contains(err.Error(), "reading.init") || !strings.Contains(err.Error(), want) {
			t.Errorf("init %s: error %v, want one naming reading.init and %q", dir, err, want)
		}
		if want == "missing" && len(said) > 0 {
			t.Errorf("a missing init folder was found only after work began: %v", said)
		}
	}
}

// maxAbsDiff is the largest difference between two models' weights of the same names.
func maxAbsDiff(t *testing.T, a, b *lm.Model) float64 {
	t.Helper()
	d := 0.0
	bw := b.Weights()
	for k, w := range a.Weights() {
		if bw[k] == nil {
			t.Fatalf("second model has no %s", k)
		}
		x, y := tensors.MustCopyFlatData[float32](w), tensors.MustCopyFlatData[float32](bw[k])
		for i := range x {
			d = max(d, math.Abs(float64(x[i]-y[i])))
		}
	}
	return d
}

// A stage with first_epoch k lays out the epochs k, k+1, ... of the whole curriculum: its data
// continues the stage before instead of repeating its knowledge bases and drills.
func TestReadingFirstEpochContinuesTheCurriculum(t *testing.T) {
	tok := testTokenizer(t)
	tpl, err := prompt.Format("gemma")
	if err != nil {
		t.Fatal(err)
	}
	whole := &ReadingConfig{Epochs: 3, Chunks: 3, Passages: []int{1, 1, 2}, Questions: 2, Drills: 4, DrillReach: 100, DrillReachFrom: 2, SeqLen: 384}
	later := *whole
	later.Epochs, later.FirstEpoch = 1, 2
	all, err := readingData(tok, tpl, true, whole, 101, nil)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := readingData(tok, tpl, true, &later, 101, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := readingData(tok, tpl, true, &ReadingConfig{Epochs: 1, Chunks: 3, Passages: []int{1, 1, 2}, Questions: 2, Drills: 4, DrillReach: 100, DrillReachFrom: 2, SeqLen: 384}, 101, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tail) == 0 || len(tail) >= len(all) || hashExamples(tail) != hashExamples(all[len(all)-len(tail):]) {
		t.Fatalf("first_epoch 2 gave %d examples, not the last epoch of the three-epoch curriculum (%d examples)", len(tail), len(all))
	}
	if hashExamples(first) == hashExamples(tail) {
		t.Error("first_epoch 2 repeats epoch 0's data")
	}
	bad := later
	bad.FirstEpoch = -1
	if err := bad.check(); err == nil || !strings.Contains(err.Error(), "first_epoch") {
		t.Errorf("negative first_epoch: %v", err)
	}
}

// A letter drill's target is the letter of the one option whose value stands in the context
// (the others' tokens never do), in the letters formulation's layout, with loss on it alone.
func TestLetterDrills(t *testing.T) {
	tok := testTokenizer(t)
	layout := newLetterLayout(tok)
	vocab := drillVocab(tok)
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[int]int{}
	for range 200 {
		ex := letterDrill(vocab, layout, rng)
		text := tok.Decode(ex.IDs)
		i := strings.Index(text, "\nA. ")
		if i < 0 || !strings.HasSuffix(text, "\nAnswer:"+tok.Decode(ex.IDs[len(ex.IDs)-countTrue(ex.Train):])) {
			t.Fatalf("not in the letters layout: %q", text)
		}
		var target []int32
		for k, tr := range ex.Train {
			if tr {
				target = append(target, ex.IDs[k])
			}
		}
		gold := -1
		for g := range 4 {
			if slices.Equal(target, layout.answer[g]) {
				gold = g
			}
		}
		if gold < 0 {
			t.Fatalf("target %v is no letter", target)
		}
		seen[gold]++
		// Options: the ids between each lead and the next.
		ctx := ex.IDs[:len(ex.IDs)-countTrue(ex.Train)]
		pos := 0
		var starts [5]int
		for g := range 4 {
			k := indexOf(ctx[pos:], layout.lead[g])
			if k < 0 {
				t.Fatalf("option %s missing", letters[g])
			}
			pos += k
			starts[g] = pos
			pos += len(layout.lead[g])
		}
		starts[4] = len(ctx) - len(layout.end)
		context := ctx[:starts[0]]
		for g := range 4 {
			opt := ctx[starts[g]+len(layout.lead[g]) : starts[g+1]]
			if found := indexOf(context, opt) >= 0; found != (g == gold) {
				t.Fatalf("option %s (%v) in the context: %v, gold %s", letters[g], opt, found, letters[gold])
			}
		}
	}
	for g := range 4 {
		if seen[g] < 30 {
			t.Errorf("letter %s is the answer %d times in 200", letters[g], seen[g])
		}
	}
	r := &ReadingConfig{Epochs: 1, Chunks: 3, Passages: []int{1}, Questions: 2, SeqLen: 384, LR: 1e-3, LetterDrills: -1}
	if err := r.check(); err == nil || !strings.Contains(err.Error(), "letter_drills") {
		t.Errorf("negative letter_drills: %v", err)
	}
}

// A keyed letter drill's questions each show options that all stand in the context, and train
// only the letter of the option that is the queried key's value.
func TestKeyedLetterDrills(t *testing.T) {
	tok := testTokenizer(t)
	layout := newLetterLayout(tok)
	vocab := drillVocab(tok)
	rng := rand.New(rand.NewPCG(5, 6))
	seen := map[int]int{}
	for _, options := range []int{2, 4} {
		for range 100 {
			ex := keyedLetterDrill(vocab, layout, options, 4, rng)
			if len(ex.IDs) != len(ex.Train) {
				t.Fatalf("%d ids, %d train flags", len(ex.IDs), len(ex.Train))
			}
			// The pairs run up to the first query's key, the token before the first lead.
			pos := indexOf(ex.IDs, layout.lead[0]) - 1
			pairs := ex.IDs[:pos]
			queries, trained := 0, 0
			for pos < len(ex.IDs) {
				key := ex.IDs[pos]
				pos++
				// Option i is what stands between its lead and the next lead (the end after the last).
				var opts [][]int32
				for i := range options {
					if indexOf(ex.IDs[pos:], layout.lead[i]) != 0 {
						t.Fatalf("query %d: option %s's lead missing", queries, letters[i])
					}
					pos += len(layout.lead[i])
					next := layout.end
					if i+1 < options {
						next = layout.lead[i+1]
					}
					k := indexOf(ex.IDs[pos:], next)
					if k < 1 || k > 2 {
						t.Fatalf("query %d: option %s holds %d tokens, want 1-2", queries, letters[i], k)
					}
					opts = append(opts, ex.IDs[pos:pos+k])
					pos += k
				}
				pos += len(layout.end)
				gold := -1
				for g := range options {
					if indexOf(ex.IDs[pos:], layout.answer[g]) == 0 {
						gold = g
					}
				}
				if gold < 0 {
					t.Fatalf("query %d: no letter answer", queries)
				}
				for k := pos - len(layout.end); k < pos+len(layout.answer[gold]); k++ {
					if want := k >= pos; ex.Train[k] != want {
						t.Fatalf("query %d: token %d trained %v, want %v (only the letter)", queries, k, ex.Train[k], want)
					}
				}
				for g, o := range opts {
					if indexOf(pairs, o) < 0 {
						t.Fatalf("option %s %v does not stand in the context", letters[g], o)
					}
				}
				if k := indexOf(pairs, []int32{key}); k < 0 || indexOf(pairs[k+1:], opts[gold]) != 0 {
					t.Fatalf("query %d: the gold option %v is not key %d's value", queries, opts[gold], key)
				}
				seen[gold]++
				pos += len(layout.answer[gold])
				trained += len(layout.answer[gold])
				queries++
			}
			if queries < 1 || queries > 4 {
				t.Fatalf("%d queries, want 1-4", queries)
			}
			if n := countTrue(ex.Train); n != trained {
				t.Fatalf("%d trained tokens, want the %d of the %d queries' letters", n, trained, queries)
			}
		}
	}
	for g := range 4 {
		if seen[g] < 20 {
			t.Errorf("letter %s answered %d times", letters[g], seen[g])
		}
	}
	for _, bad := range []ReadingConfig{
		{LetterDrills: 10, LetterQueries: -1}, {LetterDrills: 10, LetterQueries: maxLetterQueries + 1},
		{LetterDrills: 10, LetterTwoOptionEpochs: 1}, {LetterQueries: 2, LetterTwoOptionEpochs: 1},
		{LetterDrills: 10, LetterQueries: 2, LetterTwoOptionEpochs: -1},
	} {
		r := ReadingConfig{Epochs: 1, Chunks: 3, Passages: []int{1}, Questions: 2, SeqLen: 384, LR: 1e-3}
		r.LetterDrills, r.LetterQueries, r.LetterTwoOptionEpochs = bad.LetterDrills, bad.LetterQueries, bad.LetterTwoOptionEpochs
		if err := r.check(); err == nil || !strings.Contains(err.Error(), "letter_") {
			t.Errorf("%+v: got %v", bad, err)
		}
	}
}

// letter_two_option_epochs counts the stage's own epochs: a stage starting at first_epoch 5
// with one two-option epoch gives its first epoch's keyed drills options A and B only, its
// second epoch's four.
func TestLetterTwoOptionEpochs(t *testing.T) {
	tok := testTokenizer(t)
	tpl, err := prompt.Format("gemma")
	if err != nil {
		t.Fatal(err)
	}
	layout := newLetterLayout(tok)
	r := &ReadingConfig{Epochs: 2, FirstEpoch: 5, Chunks: 3, Passages: []int{1}, Questions: 2, SeqLen: 384,
		LetterDrills: 20, LetterQueries: 3, LetterTwoOptionEpochs: 1}
	var perEpoch [2][]training.Example
	for e := range 2 {
		one := *r
		one.Epochs, one.FirstEpoch = 1, r.FirstEpoch+e
		one.LetterTwoOptionEpochs = max(0, r.LetterTwoOptionEpochs-e) // the same stage, seen from epoch e
		exs, err := readingData(tok, tpl, true, &one, 101, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range exs {
			if ex.Name == "keyed letter drill" {
				perEpoch[e] = append(perEpoch[e], ex)
			}
		}
	}
	whole, err := readingData(tok, tpl, true, r, 101, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hashExamples(whole) == "" || len(perEpoch[0]) != 20 || len(perEpoch[1]) != 20 {
		t.Fatalf("keyed drills per epoch: %d, %d", len(perEpoch[0]), len(perEpoch[1]))
	}
	for e, want := range []bool{false, true} {
		for _, ex := range perEpoch[e] {
			if got := indexOf(ex.IDs, layout.lead[2]) >= 0; got != want {
				t.Fatalf("epoch %d of the stage: option C present %v, want %v", e, got, want)
			}
		}
	}
}

func countTrue(xs []bool) int {
	n := 0
	for _, x := range xs {
		if x {
			n++
		}
	}
	return n
}

// indexOf is the first index of sub in xs, -1 when absent.
func indexOf(xs, sub []int32) int {
	for i := 0; i+len(sub) <= len(xs); i++ {
		if slices.Equal(xs[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}
