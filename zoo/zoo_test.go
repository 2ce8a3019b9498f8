package zoo

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/curriculum/synthetic"
	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/training"
)

func TestDefaultConfig(t *testing.T) {
	cfg, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Names(); !reflect.DeepEqual(got, []string{"gemma-tiny", "mamba-tiny"}) {
		t.Fatalf("names %v", got)
	}
	h1, err := cfg.RecipeHash("gemma-tiny")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := cfg.RecipeHash("mamba-tiny")
	if h1 == h2 {
		t.Fatal("both models have the same recipe hash")
	}
	cfg.Train.LR *= 2
	if h3, _ := cfg.RecipeHash("gemma-tiny"); h3 == h1 {
		t.Fatal("changing the learning rate kept the recipe hash")
	}
	if _, err := cfg.RecipeHash("nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown model: %v", err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"seed: [", "bad.yaml"},
		{"world: {towns: 1}", "world.towns"},
		{"world: {towns: 8, reading_passages: 2}\ntokenizer: {vocab_size: 100}", "vocab_size"},
		{"world: {towns: 8, reading_passages: 2}\ntokenizer: {vocab_size: 300}\ntrain: {seq_len: 64, batch_size: 1, lr: 0.01}\nmodels: {a: {config: {model_type: gemma}}}", "prompt_format"},
		{"world: {towns: 8, reading_passages: 2}\ntokenizer: {vocab_size: 300}\ntrain: {seq_len: 64, batch_size: 1, lr: 0.01, clip: -1}", "train.clip"},
	} {
		_, err := ParseConfig([]byte(c.yaml), "bad.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("%q: error %v, want one naming bad.yaml and %q", c.yaml, err, c.want)
		}
	}
}

// tinyConfig is a seconds-scale recipe with the default config's model families.
func tinyConfig(t *testing.T) *Config {
	t.Helper()
	cfg, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.World = WorldConfig{Towns: 6, ReadingPassages: 6}
	cfg.Practice = PracticeConfig{Seed: 101, Chunks: 3, FactsPerChunk: 2}
	cfg.Tokenizer.VocabSize = 300
	cfg.Train = TrainConfig{SeqLen: 384, BatchSize: 4, LR: 0.01, WarmupSteps: 2, WeightDecay: 0.01, Clip: 1, PretrainEpochs: 1, InstructEpochs: 3}
	for name, m := range cfg.Models {
		c := map[string]any{}
		for k, v := range m.Config {
			c[k] = v
		}
		c["hidden_size"], c["num_hidden_layers"] = 16, 1
		if m.Config["model_type"] == "gemma" {
			c["intermediate_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"] = 32, 2, 2, 8
		} else {
			c["intermediate_size"], c["state_size"], c["time_step_rank"] = 32, 4, 2
		}
		m.Config = c
		// The tiny gemma is built by recipe v3 (reading), the tiny mamba by v2: both paths run.
		if m.Config["model_type"] == "gemma" {
			m.Reading = &ReadingConfig{Epochs: 2, Chunks: 3, Passages: []int{1, 2}, Questions: 3, Drills: 20, SeqLen: 384,
				LR: 0.01, WarmupSteps: 2, ProbeEvery: 4, ProbeQuestions: 2, Schedule: "wsd", DecayFraction: 0.5}
		}
		cfg.Models[name] = m
	}
	return cfg
}

func TestBuildTinyModels(t *testing.T) {
	cfg := tinyConfig(t)
	for _, name := range cfg.Names() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			m, err := Build(context.Background(), cfg, name, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json", ManifestFile} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("missing %s", f)
				}
			}
			model, err := lm.Load(dir, lm.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := tokenizer.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tok.VocabSize() != model.Arch().VocabSize() && model.Arch().Family() != "mamba" {
				t.Errorf("tokenizer has %d ids, model %d", tok.VocabSize(), model.Arch().VocabSize())
			}
			second := "instruct"
			if cfg.Models[name].Reading != nil {
				second = "reading"
			}
			if len(m.Phases) != 2 || m.Phases[1].Name != second {
				t.Fatalf("phases %+v", m.Phases)
			}
			inst := m.Phases[1]
			if second == "reading" && len(inst.Probes) == 0 {
				t.Error("recipe v3 recorded no learning-curve probes")
			}
			for _, p := range inst.Probes {
				for _, k := range []string{"read_cloze", "read_letters", "closed_cloze", "book_cloze", "copy_drill", "recall_drill", "letter_drill", "letter_keyed"} {
					if v, ok := p.Scores[k]; !ok || v < 0 || v > 1 {
						t.Errorf("probe at step %d: %s = %v (present %v)", p.Step, k, v, ok)
					}
				}
			}
			if !(inst.FinalLoss < inst.FirstLoss) {
				t.Errorf("instruction tuning did not lower the loss: %.3f -> %.3f", inst.FirstLoss, inst.FinalLoss)
			}
			var onDisk Manifest
			data, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
			if err := json.Unmarshal(data, &onDisk); err != nil || onDisk.RecipeHash == "" || onDisk.Parameters == 0 || onDisk.DataHashes["instruct"] == "" {
				t.Errorf("manifest %s: %v", data, err)
			}
			// Same recipe, same weights: the build is deterministic.
			again := t.TempDir()
			if _, err := Build(context.Background(), cfg, name, again, Options{}); err != nil {
				t.Fatal(err)
			}
			model2, err := lm.Load(again, lm.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if model.Hash() != model2.Hash() {
				t.Error("two builds of the same recipe differ")
			}
		})
	}
}

func TestBuildUnknownModel(t *testing.T) {
	cfg := tinyConfig(t)
	if _, err := Build(context.Background(), cfg, "nope", t.TempDir(), Options{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("error %v", err)
	}
}

// The instruction data renders multiple-choice questions exactly as the evaluation prompts
// them (evaluation/tasks/perpetual_letters.yaml and perpetual_cloze.yaml), so the letter a zoo
// model learns to answer is the continuation the evaluation scores.
func TestInstructionDataMatchesEvaluationPrompts(t *testing.T) {
	cfg := tinyConfig(t)
	// The question texts are the evaluation tasks' own renderings (their doc_to_text), for every
	// practice question and one with surrounding spaces.
	tasks := map[string]*evaluation.Task{}
	for _, f := range []string{"letters", "cloze"} {
		task, err := evaluation.DefaultTask(f)
		if err != nil {
			t.Fatal(err)
		}
		tasks[f] = task
	}
	prac, err := practiceCurricula(cfg)
	if err != nil {
		t.Fatal(err)
	}
	qs := []curriculum.Question{{Question: " What colour is it? ", Choices: []string{"red", "blue", "green", "white"}, Answer: 2}}
	for _, cur := range prac {
		qs = append(qs, cur.Test...)
	}
	for _, q := range qs {
		for f, render := range map[string]func(curriculum.Question) string{"letters": lettersText, "cloze": clozeText} {
			want, err := tasks[f].Prompt(&q)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(q); got != want {
				t.Fatalf("%s: zoo renders %q, the evaluation %q", f, got, want)
			}
		}
	}
	w := synthetic.NewWorld(synthetic.WorldOptions{Seed: 1, Towns: 6, ReadingPassages: 6})
	tok := testTokenizer(t)
	tpl, _ := prompt.Format("gemma")
	practice, err := practiceCurricula(cfg)
	if err != nil {
		t.Fatal(err)
	}
	enc := &training.Encoder{Tok: tok, Options: training.DataOptions{Template: tpl, Mask: training.MaskAnswers}, UseBOS: true}
	exs, err := instructExamples(enc, w, practice, 1)
	if err != nil {
		t.Fatal(err)
	}
	reading, err := readingCurricula(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	rex, err := encodeAll(enc, "reading", readingQuestions(reading, 1))
	if err != nil {
		t.Fatal(err)
	}
	exs = append(exs, rex...)
	var letterAnswers, withPassage, practiceReading int
	for _, ex := range exs {
		promptLen := 0
		for promptLen < len(ex.Train) && !ex.Train[promptLen] {
			promptLen++
		}
		p := tok.Decode(ex.IDs[:promptLen])
		r := tok.Decode(ex.IDs[promptLen:])
		if strings.HasSuffix(p, "Answer:<end_of_turn>\n<start_of_turn>model\n") && len(r) > 1 && strings.Contains("ABCD", r[1:2]) && strings.HasPrefix(r[2:], "<end_of_turn>") {
			letterAnswers++
			if strings.Contains(p, "\n\n") {
				withPassage++
			}
		}
		// A reading question with retrieved passages: its own chunk's text precedes it.
		for _, cur := range reading {
			for _, q := range cur.Test {
				if strings.Contains(p, q.Question) && strings.Contains(p, cur.ChunkByID()[q.ChunkID].Text) {
					practiceReading++
				}
			}
		}
	}
	practiceQuestions, readingQs := 0, 0
	for _, cur := range practice {
		practiceQuestions += len(cur.Test)
	}
	for _, cur := range reading {
		readingQs += len(cur.Test)
	}
	if want := len(w.Questions) + len(w.Reading) + practiceQuestions + readingQs; letterAnswers < want || withPassage < len(w.Reading)+readingQs {
		t.Fatalf("%d letter answers (%d with a passage), want %d", letterAnswers, withPassage, want)
	}
	if practiceReading < 2*readingQs {
		t.Fatalf("%d reading questions with their passage, want %d (letters and cloze)", practiceReading, 2*readingQs)
	}
	// Reading sets are fresh knowledge bases: none of their entities is a practice entity.
	taught := map[string]bool{}
	for _, cur := range practice {
		for _, c := range cur.Chunks {
			taught[c.Title] = true
		}
	}
	for _, cur := range reading {
		for _, c := range cur.Chunks {
			if taught[c.Title] {
				t.Errorf("reading entity %q is also taught", c.Title)
			}
		}
	}
}

// The tokenizer sees the knowledge bases' words but not their sentences.
func TestTokenizerCorpusKeepsNoFacts(t *testing.T) {
	cfg := tinyConfig(t)
	w := synthetic.NewWorld(synthetic.WorldOptions{Seed: 1, Towns: 6, ReadingPassages: 6})
	corpus, err := TokenizerCorpus(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	kb := corpus[len(corpus)-len(synthetic.Tasks):]
	for i, line := range kb {
		words := strings.Fields(line)
		if len(words) < 20 || !sort.StringsAreSorted(words) {
			t.Fatalf("knowledge base %s: %d words, sorted %v", synthetic.Tasks[i], len(words), sort.StringsAreSorted(words))
		}
	}
}

func TestEnsureCachesAndCommittedMatch(t *testing.T) {
	cfg, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range cfg.Names() {
		if !Committed(cfg, name) {
			t.Logf("%s: no committed checkpoint for the current recipe (Ensure would train it)", name)
			continue
		}
		cache := t.TempDir()
		dir, err := Ensure(context.Background(), name, cache, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lm.Load(dir, lm.LoadOptions{}); err != nil {
			t.Fatal(err)
		}
		again, err := Ensure(context.Background(), name, cache, Options{})
		if err != nil || again != dir {
			t.Fatalf("second Ensure: %s, %v", again, err)
		}
	}
	if _, err := Ensure(context.Background(), "nope", t.TempDir(), Options{}); err == nil {
		t.Fatal("unknown model accepted")
	}
}
