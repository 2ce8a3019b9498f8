package training_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/training/trainingtest"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/training"
	"github.com/perpetual-ml/perpetual/zoo"
	"github.com/perpetual-ml/perpetual/zoo/zootest"

	_ "github.com/perpetual-ml/perpetual/models/gemma"
	_ "github.com/perpetual-ml/perpetual/models/mamba"
)

// tinyModel builds the harness's random-init tiny model of the given config in a temp folder.
func tinyModel(t testing.TB, config map[string]any) (string, *lm.Model, tokenizer.Tokenizer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	if err := zoo.RandomModel(dir, config, 1); err != nil {
		t.Fatal(err)
	}
	m, err := lm.Load(dir, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m, tok
}

func tinyCurriculum(t testing.TB, chunks int) *curriculum.Curriculum {
	t.Helper()
	c, err := synthetic.Build("products", synthetic.Options{Seed: 1, Chunks: chunks, FactsPerChunk: 3})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// accuracy scores the "seen" multiple-choice questions by the log-likelihood of the training
// flashcard of the same fact (same chunk, answer stating the right choice) with each choice put in
// the answer: a tiny model memorises the flashcards' wording but does not generalise to the test
// questions' paraphrases, so this asks "has it learned the fact as taught" against 4 choices.
func accuracy(t testing.TB, m *lm.Model, tok tokenizer.Tokenizer, c *curriculum.Curriculum) (float64, int) {
	t.Helper()
	tmpl, _ := prompt.Format("alpaca")
	var reqs []lm.Request
	var qs []curriculum.Question
	for _, q := range c.Test {
		if q.Kind != curriculum.KindSeen {
			continue
		}
		right := q.Choices[q.Answer]
		for _, it := range c.Train {
			if it.Type != curriculum.TypeQnA || it.ChunkID != q.ChunkID || !strings.Contains(it.Answer, right) {
				continue
			}
			qs = append(qs, q)
			ctx := append([]int32{tok.Special().BOS}, tok.Encode(tmpl.RenderPrompt(it.Question, ""))...)
			for _, ch := range q.Choices {
				reqs = append(reqs, lm.Request{Context: ctx, Continuation: tok.Encode(strings.Replace(it.Answer, right, ch, 1))})
			}
			break
		}
	}
	if len(qs) == 0 {
		t.Fatal("no seen question matches a flashcard")
	}
	res, err := m.LogLikelihood(reqs, 16)
	if err != nil {
		t.Fatal(err)
	}
	right, k := 0, 0
	for _, q := range qs {
		best := 0
		for i := range q.Choices {
			if res[k+i].LogProb > res[k+best].LogProb {
				best = i
			}
		}
		if best == q.Answer {
			right++
		}
		k += len(q.Choices)
	}
	return float64(right) / float64(len(qs)), len(qs)
}

func TestTrainingLearnsSeenFacts(t *testing.T) {
	_, m, tok := tinyModel(t, zootest.TinyGemma)
	c := tinyCurriculum(t, 12)
	before, n := accuracy(t, m, tok, c)
	res, err := training.Run(m, tok, c, training.Options{Out: t.TempDir(), Epochs: 30, LR: 5e-3, WarmupSteps: 2, BatchSize: 4, Accumulation: 1, MaxLength: 256, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := accuracy(t, m, tok, c)
	first, last := res.Metrics[0].Loss, res.Metrics[len(res.Metrics)-1].Loss
	t.Logf("%d steps, loss %.3f -> %.3f, seen accuracy %.2f -> %.2f on %d questions", res.Steps, first, last, before, after, n)
	if !(last < first/2) {
		t.Errorf("loss %.3f -> %.3f: did not halve", first, last)
	}
	if after < 0.6 {
		t.Errorf("seen accuracy after training %.2f (before %.2f), want >= 0.6 (chance 0.25)", after, before)
	}
}

func smallOptions(out string) training.Options {
	return training.Options{Out: out, Epochs: 2, LR: 3e-3, WarmupSteps: 1, BatchSize: 2, Accumulation: 2, MaxLength: 512, Seed: 7, Order: training.OrderShuffled}
}

func weightsOf(t testing.TB, m *lm.Model) map[string][]float32 {
	out := map[string][]float32{}
	for k, v := range m.Weights() {
		out[k] = tensors.MustCopyFlatData[float32](v)
	}
	return out
}

func maxDiff(a, b map[string][]float32) (float64, string) {
	worst, where := 0.0, ""
	for k, x := range a {
		for i := range x {
			if d := math.Abs(float64(x[i] - b[k][i])); d > worst || math.IsNaN(d) {
				worst, where = d, k
			}
		}
	}
	return worst, where
}

// A run stopped right after its first checkpoint and resumed ends with exactly the weights of
// an uninterrupted run (the Go backend is deterministic on one machine), for both families. The
// mamba run resumes as if killed between the two renames of a checkpoint swap (only
// .checkpoint-old left), the LoRA run as if killed after assembling the new checkpoint (only
// .checkpoint-tmp, complete, left). The gemma run first tries resuming with other settings or
// data, which is refused naming each difference.
func TestResumeEqualsUninterrupted(t *testing.T) {
	lora := &training.LoRA{Rank: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj"}}
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		lora *training.LoRA
		// moveTo, when set, renames checkpoint/ to it before resuming.
		moveTo string
	}{{"gemma", zootest.TinyGemma, nil, ""}, {"mamba", zootest.TinyMamba, nil, ".checkpoint-old"},
		{"gemma-lora", zootest.TinyGemma, lora, ".checkpoint-tmp"}} {
		cfg := tc.cfg
		t.Run(tc.name, func(t *testing.T) {
			dir, m1, tok := tinyModel(t, cfg)
			c := tinyCurriculum(t, 4)
			o := smallOptions(t.TempDir())
			o.CheckpointEvery, o.LoRA = 2, tc.lora
			full, err := training.Run(m1, tok, c, o)
			if err != nil {
				t.Fatal(err)
			}
			if full.Steps < 4 {
				t.Fatalf("only %d steps; the test needs a checkpoint mid-way", full.Steps)
			}
			m2, err := lm.Load(dir, lm.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			o2 := smallOptions(t.TempDir())
			o2.CheckpointEvery, o2.LoRA = 2, tc.lora
			o2.StopAfterStep = 3 // dies one step after the checkpoint at step 2
			part, err := training.Run(m2, tok, c, o2)
			if err != nil {
				t.Fatal(err)
			}
			if !part.Stopped || part.Steps != 3 {
				t.Fatalf("stopped=%v at %d, want a stop at step 3", part.Stopped, part.Steps)
			}
			m3, err := lm.Load(dir, lm.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			o2.StopAfterStep, o2.Resume = 0, true
			if tc.moveTo != "" {
				if err := os.Rename(filepath.Join(o2.Out, "checkpoint"), filepath.Join(o2.Out, tc.moveTo)); err != nil {
					t.Fatal(err)
				}
				if !training.HasCheckpoint(o2.Out) {
					t.Error("HasCheckpoint is false")
				}
			}
			if tc.name == "gemma" {
				refusesOtherSettings(t, m3, tok, c, o2)
			}
			resumed, err := training.Run(m3, tok, c, o2)
			if err != nil {
				t.Fatal(err)
			}
			if d, where := maxDiff(weightsOf(t, m1), weightsOf(t, m3)); d != 0 {
				t.Errorf("resumed weights differ from uninterrupted by %g (%s)", d, where)
			}
			if len(resumed.Metrics) != len(full.Metrics) {
				t.Errorf("resumed run has %d metric lines, uninterrupted %d", len(resumed.Metrics), len(full.Metrics))
			}
			for i := range full.Metrics {
				if i < len(resumed.Metrics) && resumed.Metrics[i].Loss != full.Metrics[i].Loss {
					t.Errorf("step %d loss %v resumed vs %v", i+1, resumed.Metrics[i].Loss, full.Metrics[i].Loss)
				}
			}
			// The output folder is a loadable model equal to the in-memory one.
			saved, err := lm.Load(o2.Out, lm.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if saved.Hash() != m3.Hash() {
				t.Error("saved model differs from the trained weights")
			}
		})
	}
}

// refusesOtherSettings tries resuming o's checkpoint with other settings or data: each is refused
// with an error naming the differing fields and both values, before any step.
func refusesOtherSettings(t *testing.T, m *lm.Model, tok tokenizer.Tokenizer, c *curriculum.Curriculum, o training.Options) {
	t.Helper()
	other, err := synthetic.Build("products", synthetic.Options{Seed: 2, Chunks: 4, FactsPerChunk: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(o *training.Options) *curriculum.Curriculum
		want   []string
	}{
		{"lr and warmup", func(o *training.Options) *curriculum.Curriculum { o.LR, o.WarmupSteps = 1e-3, 3; return c },
			[]string{"lr: checkpoint 0.003, this run 0.001", "warmup_steps: checkpoint 1, this run 3"}},
		{"curriculum", func(o *training.Options) *curriculum.Curriculum { return other }, []string{"data_hash"}},
		{"mask", func(o *training.Options) *curriculum.Curriculum { o.Mask = training.MaskAnswers; return c },
			[]string{"data_hash", `mask: checkpoint "all", this run "answers"`}},
		{"clip", func(o *training.Options) *curriculum.Curriculum { o.ClipNorm = new(0.0); return c },
			[]string{"clip_norm: checkpoint 1, this run 0"}},
	} {
		o2 := o
		cur := tc.change(&o2)
		_, err := training.Run(m, tok, cur, o2)
		if err == nil {
			t.Fatalf("resume with another %s accepted", tc.name)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("resume with another %s: error %v lacks %q", tc.name, err, w)
			}
		}
	}
}

// Whether curriculum items start with BOS follows the model folder's tokenizer files
// (tokenizer_config.json's add_bos_token), not the model family: a Gemma whose tokenizer says
// false gets none, a Mamba whose tokenizer says true gets it.
func TestCurriculumEncoderBOSFollowsTheTokenizer(t *testing.T) {
	for _, cfg := range []map[string]any{zootest.TinyGemma, zootest.TinyMamba} {
		family := cfg["model_type"].(string)
		dir, m, tok := tinyModel(t, cfg)
		tmpl, _ := prompt.Format("alpaca")
		for _, addBOS := range []bool{true, false} {
			tc := fmt.Sprintf(`{"bos_token": "<bos>", "eos_token": "<eos>", "add_bos_token": %v}`, addBOS)
			if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc), 0o644); err != nil {
				t.Fatal(err)
			}
			enc, err := training.CurriculumEncoder(m, tok, tmpl, training.Options{Mask: training.MaskAll})
			if err != nil {
				t.Fatal(err)
			}
			doc, err := enc.Doc("doc", "A river runs through the town.")
			if err != nil {
				t.Fatal(err)
			}
			card, err := enc.Flashcard("card", prompt.Example{Instruction: "Where?", Response: "Here."})
			if err != nil {
				t.Fatal(err)
			}
			bos := tok.Special().BOS
			if (doc.IDs[0] == bos) != addBOS || (card.IDs[0] == bos) != addBOS {
				t.Errorf("%s with add_bos_token %v: document starts %v, flashcard %v (BOS %d)", family, addBOS, doc.IDs[:2], card.IDs[:2], bos)
			}
		}
	}
}

// Packing several items into a row (segments, restarting positions) gives the same loss as one
// item per row: the loss of the very first step and the validation loss are equal.
func TestPackingEqualsUnpacked(t *testing.T) {
	for _, cfg := range []map[string]any{zootest.TinyGemma, zootest.TinyMamba} {
		t.Run(cfg["model_type"].(string), func(t *testing.T) {
			_, m, tok := tinyModel(t, cfg)
			c := tinyCurriculum(t, 4)
			tmpl, _ := prompt.Format("alpaca")
			enc, err := training.CurriculumEncoder(m, tok, tmpl, training.Options{Mask: training.MaskAll})
			if err != nil {
				t.Fatal(err)
			}
			exs, err := enc.Items("train", c.Train)
			if err != nil {
				t.Fatal(err)
			}
			trainingtest.CheckPackedLossEqualsUnpacked(t, m, exs, 512, 1e-4)
		})
	}
}

// A LoRA-trained model's merged weights give the logits of base + adapters; the base weights
// not targeted are unchanged.
func TestLoRAMergeEqualsAdapter(t *testing.T) {
	_, m, tok := tinyModel(t, zootest.TinyGemma)
	base := weightsOf(t, m)
	c := tinyCurriculum(t, 4)
	cfg := training.LoRA{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "down_proj"}}
	setup, init, err := training.LoRASetup(m.Arch(), cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Non-zero B so the adapters matter.
	for i := 1; i < len(init); i += 2 {
		d := tensors.MustCopyFlatData[float32](init[i])
		for j := range d {
			d[j] = float32((j%7)-3) * 0.01
		}
		init[i] = tensors.FromFlatDataAndDimensions(d, init[i].Shape().Dimensions...)
	}
	steps, err := training.NewSteps(m.Backend(), setup)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := prompt.Format("alpaca")
	enc := &training.Encoder{Tok: tok, Options: training.DataOptions{Template: tmpl, Mask: training.MaskAll}, UseBOS: true}
	exs, _ := enc.Items("train", c.Train)
	rows, _ := training.Pack(exs, 512, true)
	batch := training.MakeBatch(rows[:2], 2, 512)
	adapted, _, err := steps.Loss(m.WeightList(), init, batch)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := training.MergeLoRA(m.Weights(), setup, init, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetWeights(merged); err != nil {
		t.Fatal(err)
	}
	full, err := training.NewSteps(m.Backend(), training.FullSetup(m.Arch(), m.DType()))
	if err != nil {
		t.Fatal(err)
	}
	mergedLoss, _, err := full.Loss(nil, m.WeightList(), batch)
	if err != nil {
		t.Fatal(err)
	}
	baseLoss := func() float64 {
		b := map[string]*tensors.Tensor{}
		for k, v := range base {
			b[k] = tensors.FromFlatDataAndDimensions(v, m.Weights()[k].Shape().Dimensions...)
		}
		m2, err := lm.New(m.Arch(), m.Config(), b, lm.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l, _, err := full.Loss(nil, m2.WeightList(), batch)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}()
	t.Logf("base %.6f adapted %.6f merged %.6f", baseLoss, adapted, mergedLoss)
	if math.Abs(adapted-mergedLoss) > 1e-4*math.Abs(adapted) {
		t.Errorf("merged loss %v != adapter loss %v", mergedLoss, adapted)
	}
	if math.Abs(adapted-baseLoss) < 1e-3 {
		t.Errorf("adapters did not change the loss (%v vs base %v): the test checks nothing", adapted, baseLoss)
	}
	after := weightsOf(t, m)
	for k := range base {
		changed := false
		if d, _ := maxDiff(map[string][]float32{k: base[k]}, map[string][]float32{k: after[k]}); d > 0 {
			changed = true
		}
		targeted := strings.Contains(k, "q_proj") || strings.Contains(k, "v_proj") || strings.Contains(k, "down_proj")
		if changed != targeted {
			t.Errorf("%s: changed=%v targeted=%v", k, changed, targeted)
		}
	}
}

// LoRA training runs end to end and trains only the adapters.
func TestLoRATrainingLowersLoss(t *testing.T) {
	_, m, tok := tinyModel(t, zootest.TinyGemma)
	c := tinyCurriculum(t, 4)
	o := smallOptions(t.TempDir())
	o.Epochs, o.LR = 4, 1e-2
	o.LoRA = &training.LoRA{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "o_proj"}}
	res, err := training.Run(m, tok, c, o)
	if err != nil {
		t.Fatal(err)
	}
	first, last := res.Metrics[0].Loss, res.Metrics[len(res.Metrics)-1].Loss
	if !(last < first) {
		t.Errorf("LoRA loss %v -> %v", first, last)
	}
}

func TestBadInput(t *testing.T) {
	_, m, tok := tinyModel(t, zootest.TinyGemma)
	c := tinyCurriculum(t, 4)
	check := func(name string, o training.Options, cur *curriculum.Curriculum, want string) {
		t.Helper()
		if o.Out == "" {
			o.Out = t.TempDir()
		}
		_, err := training.Run(m, tok, cur, o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, want)
		}
	}
	check("empty", training.Options{}, &curriculum.Curriculum{}, "no training items")
	o := smallOptions("")
	o.MaxLength = 100
	check("too long flashcard", o, c, "do not fit the maximum length 100")
	o = smallOptions("")
	o.MemoryLimit = 1 << 10
	check("memory", o, c, "only 0.00 GiB is available")
	o = smallOptions("")
	o.Order = "sideways"
	check("order", o, c, `Options.Order = "sideways": unknown order`)
	o = smallOptions("")
	o.Resume = true
	check("resume nothing", o, c, "resume: no checkpoint")
	o = smallOptions("")
	o.ReplayFile = filepath.Join(t.TempDir(), "replay.jsonl")
	o.ReplayFraction = 0.5
	os.WriteFile(o.ReplayFile, []byte("{\"instruction\": \"hi\"}\n"), 0o644)
	check("replay", o, c, "replay.jsonl:1: instruction and output are required")
	// Values out of range are refused before anything is written to the output folder.
	for _, tc := range []struct {
		change func(o *training.Options)
		want   string
	}{
		{func(o *training.Options) { o.BatchSize = -1 }, "Options.BatchSize = -1: must not be negative"},
		{func(o *training.Options) { o.Accumulation = -1 }, "Options.Accumulation = -1"},
		{func(o *training.Options) { o.Epochs = -1 }, "Options.Epochs = -1"},
		{func(o *training.Options) { o.LR = math.NaN() }, "Options.LR = NaN"},
		{func(o *training.Options) { o.Mask = "answer" }, `Options.Mask = "answer": unknown mask`},
		{func(o *training.Options) { o.ClipNorm = new(-1.0) }, "Options.ClipNorm = -1"},
		{func(o *training.Options) { o.WeightDecay = new(math.Inf(1)) }, "Options.WeightDecay = +Inf"},
		{func(o *training.Options) { o.Beta2 = 1 }, "Options.Beta2 = 1"},
		{func(o *training.Options) { o.LoRA = &training.LoRA{Rank: 0, Alpha: 1, Targets: []string{"q_proj"}} }, "Options.LoRA.Rank = 0"},
		{func(o *training.Options) { o.LoRA = &training.LoRA{Rank: 2, Alpha: 4, Targets: []string{""}} }, "Options.LoRA.Targets"},
		{func(o *training.Options) { o.CheckpointEvery = -5 }, "Options.CheckpointEvery = -5"},
		{func(o *training.Options) { o.ReplayFraction = -0.1 }, "Options.ReplayFraction = -0.1"},
	} {
		o := smallOptions(filepath.Join(t.TempDir(), "out"))
		tc.change(&o)
		check(tc.want, o, c, tc.want)
		if _, err := os.Stat(o.Out); err == nil {
			t.Errorf("%s: the output folder was created", tc.want)
		}
	}
	_ = fmt.Sprint
}

// WarmupSteps < 0 (none) reaches the schedule through Run: the first step uses the full learning
// rate (Run and Fit each applied Defaults, turning "none" into the default 5).
func TestNoWarmupThroughRun(t *testing.T) {
	_, m, tok := tinyModel(t, zootest.TinyMamba)
	o := smallOptions(t.TempDir())
	o.Epochs, o.WarmupSteps = 1, -1
	res, err := training.Run(m, tok, tinyCurriculum(t, 4), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics[0].LR != o.LR {
		t.Errorf("first step lr %v, want %v (no warm-up)", res.Metrics[0].LR, o.LR)
	}
}

// ClipNorm and WeightDecay take 0 as given (no clipping, no decay); nil takes the defaults.
func TestZeroClipAndDecayAreTaken(t *testing.T) {
	o := training.Options{ClipNorm: new(0.0), WeightDecay: new(0.0)}
	o.Defaults()
	if *o.ClipNorm != 0 || *o.WeightDecay != 0 {
		t.Errorf("explicit zeros became clip %v, decay %v", *o.ClipNorm, *o.WeightDecay)
	}
	o = training.Options{}
	o.Defaults()
	if *o.ClipNorm != 1 || *o.WeightDecay != 0.01 {
		t.Errorf("defaults: clip %v, decay %v", *o.ClipNorm, *o.WeightDecay)
	}
}

// bf16 compute with float32 master weights trains, and the model keeps its dtype.
func TestBF16MasterWeights(t *testing.T) {
	dir, _, tok := tinyModel(t, zootest.TinyGemma)
	m, err := lm.Load(dir, lm.LoadOptions{DType: dtypes.BFloat16})
	if err != nil {
		t.Fatal(err)
	}
	o := smallOptions(t.TempDir())
	o.Epochs, o.LR = 3, 1e-2
	res, err := training.Run(m, tok, tinyCurriculum(t, 4), o)
	if err != nil {
		t.Fatal(err)
	}
	first, last := res.Metrics[0].Loss, res.Metrics[len(res.Metrics)-1].Loss
	if !(last < first) {
		t.Errorf("bf16 loss %v -> %v", first, last)
	}
	if m.DType() != dtypes.BFloat16 || m.Weights()["model.embed_tokens.weight"].DType() != dtypes.BFloat16 {
		t.Error("model dtype changed")
	}
}

// A diverging run stops with an error naming the step and the last good checkpoint.
func TestNaNLossStops(t *testing.T) {
	_, m, tok := tinyModel(t, zootest.TinyGemma)
	o := smallOptions(t.TempDir())
	o.Epochs, o.LR, o.ClipNorm, o.WarmupSteps, o.CheckpointEvery = 20, 1e6, new(0.0), -1, 1
	_, err := training.Run(m, tok, tinyCurriculum(t, 4), o)
	if err == nil || !strings.Contains(err.Error(), "loss is") || !strings.Contains(err.Error(), "last good checkpoint") {
		t.Fatalf("error %v", err)
	}
	t.Log(err)
	if _, err := lm.Load(filepath.Join(o.Out, "checkpoint", "model"), lm.LoadOptions{}); err != nil {
		t.Errorf("last good checkpoint not loadable: %v", err)
	}
}

// Retention is measured before and after and written to retention.json; replay data mixes in.
func TestRetentionAndReplay(t *testing.T) {
	_, m, tok := tinyModel(t, zootest.TinyGemma)
	tmp := t.TempDir()
	data := `{"instruction": "Name a colour.", "output": "Blue."}
{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
`
	path := filepath.Join(tmp, "general.jsonl")
	os.WriteFile(path, []byte(data), 0o644)
	o := smallOptions(filepath.Join(tmp, "out"))
	o.RetentionFile, o.ReplayFile, o.ReplayFraction = path, path, 0.3
	res, err := training.Run(m, tok, tinyCurriculum(t, 4), o)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(o.Out, "retention.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r training.Retention
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("retention %+v", r)
	if r.Before.Perplexity <= 1 || r.After.Perplexity <= 1 || r.Before.Perplexity == r.After.Perplexity || r.After.MaxNewTokens == 0 {
		t.Errorf("retention %+v", r)
	}
	if res.Retention == nil {
		t.Error("no retention in the result")
	}
}

// A cancelled context ends the run after the current step with a checkpoint to resume from.
func TestCancelWritesCheckpoint(t *testing.T) {
	_, m, tok := tinyModel(t, zootest.TinyMamba)
	o := smallOptions(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.Context = ctx
	_, err := training.Run(m, tok, tinyCurriculum(t, 4), o)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted after step 1") {
		t.Fatalf("error %v", err)
	}
	o.Context, o.Resume = nil, true
	res, err := training.Run(m, tok, tinyCurriculum(t, 4), o)
	if err != nil || res.Metrics[0].Step != 1 || res.Steps != 4 {
		t.Fatalf("resume after cancel: %v %+v", err, res)
	}
}

// Probes run every ProbeEvery steps and after the last, see that step's weights (the last
// probe sees the final model), land in metrics.jsonl, and leave training unchanged; with LoRA
// they see the merged model and the adapters train on.
func TestProbesSeeEachStepsWeights(t *testing.T) {
	for _, lora := range []*training.LoRA{nil, {Rank: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj"}}} {
		dir, m, tok := tinyModel(t, zootest.TinyGemma)
		c := tinyCurriculum(t, 4)
		o := smallOptions(t.TempDir())
		o.LoRA = lora
		var steps []int
		var lastHash string
		o.ProbeEvery = 2
		o.Probe = func(step int, pm *lm.Model) (map[string]float64, error) {
			steps = append(steps, step)
			lastHash = pm.Hash()
			return map[string]float64{"step_twice": float64(2 * step)}, nil
		}
		res, err := training.Run(m, tok, c, o)
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for s := 2; s <= res.Steps; s += 2 {
			want = append(want, s)
		}
		if res.Steps%2 != 0 {
			want = append(want, res.Steps)
		}
		if fmt.Sprint(steps) != fmt.Sprint(want) {
			t.Fatalf("lora=%v: probes at %v, want %v", lora != nil, steps, want)
		}
		if lastHash != m.Hash() {
			t.Errorf("lora=%v: the last probe did not see the final weights", lora != nil)
		}
		data, err := os.ReadFile(filepath.Join(o.Out, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(string(data), `"probe":{"step_twice"`); got != len(want) {
			t.Errorf("lora=%v: %d metric lines carry a probe, want %d", lora != nil, got, len(want))
		}
		// The same run without probes ends with the same weights.
		m2, err := lm.Load(dir, lm.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		o2 := smallOptions(t.TempDir())
		o2.LoRA = lora
		if _, err := training.Run(m2, tok, c, o2); err != nil {
			t.Fatal(err)
		}
		if m2.Hash() != m.Hash() {
			t.Errorf("lora=%v: probing changed the training", lora != nil)
		}
	}
}

// The wsd schedule warms up, holds the rate, then decays to 0 over its last fraction of steps;
// the default stays Hugging Face's linear schedule; a bad schedule is refused.
func TestWSDSchedule(t *testing.T) {
	o := training.Options{LR: 1e-3, WarmupSteps: 10, Schedule: training.ScheduleWSD, DecayFraction: 0.2}
	for _, c := range []struct {
		done int
		want float64
	}{{0, 0}, {5, 5e-4}, {10, 1e-3}, {50, 1e-3}, {79, 1e-3}, {80, 1e-3}, {90, 5e-4}, {100, 0}} {
		if got := training.ScheduleLR(o, c.done, 100); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("wsd after %d steps: %g, want %g", c.done, got, c.want)
		}
	}
	o.Schedule = ""
	if got, want := training.ScheduleLR(o, 55, 100), training.LRAt(1e-3, 55, 10, 100); got != want {
		t.Errorf("default schedule %g, want linear %g", got, want)
	}
	for _, bad := range []training.Options{{Schedule: "cosine"}, {Schedule: training.ScheduleWSD}, {Schedule: training.ScheduleWSD, DecayFraction: 1.5}} {
		bad.Out, bad.LR = "x", 1e-3
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Options.Paraphrases 0 trains on a curriculum with paraphrase flashcards exactly as on the
// same curriculum built without them; nil trains on all of them.
func TestParaphrasesOption(t *testing.T) {
	build := func(paraphrases int) *curriculum.Curriculum {
		c, err := synthetic.Build("products", synthetic.Options{Seed: 1, Chunks: 4, FactsPerChunk: 3, Paraphrases: paraphrases})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	run := func(c *curriculum.Curriculum, paraphrases *int) *training.Result {
		_, m, tok := tinyModel(t, zootest.TinyGemma)
		o := smallOptions(t.TempDir())
		o.Epochs, o.Paraphrases = 1, paraphrases
		res, err := training.Run(m, tok, c, o)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	plain, limited, all := run(build(0), nil), run(build(2), new(0)), run(build(2), nil)
	losses := func(r *training.Result) (out []float64) {
		for _, m := range r.Metrics {
			out = append(out, m.Loss, m.GradNorm)
		}
		return out
	}
	if a, b := losses(plain), losses(limited); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("Paraphrases 0 trained differently from the curriculum without paraphrases:\n%v\n%v", a, b)
	}
	if all.Steps <= plain.Steps {
		t.Errorf("nil Paraphrases trained %d steps, the plain curriculum %d: the paraphrases were dropped", all.Steps, plain.Steps)
	}
	o := smallOptions(t.TempDir())
	o.Paraphrases = new(-1)
	var oe *training.OptionError
	if err := o.Validate(); !errors.As(err, &oe) || oe.Field != "Paraphrases" {
		t.Errorf("negative Paraphrases: got %v", err)
	}
}
