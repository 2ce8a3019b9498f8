package evaluation

// The done-when check of issue 6: on the tiny Gemma and Mamba checkpoints of models/*/testdata and
// a toy tokenizer, every log-likelihood, is_greedy, acc, acc_norm and acc_bytes equals the independent
// reference (testdata/reference.py: plain Python harness semantics + plain-torch Gemma) on 300
// questions, for both formulations, and the results do not change with batch size (1, 7, 32).
//
// The scorer is the project's model runtime, lm.Model, loading the checkpoint folder.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/perpetual-ml/perpetual/curriculum"
	_ "github.com/perpetual-ml/perpetual/models/gemma" // registers the "gemma" architecture
	"github.com/perpetual-ml/perpetual/models/lm"
	_ "github.com/perpetual-ml/perpetual/models/mamba" // registers the "mamba" architecture
)

// tinyTokenizer is the toy tokenizer of testdata/tiny_vocab.json: greedy longest match.
type tinyTokenizer struct {
	pieces []string
	first  int32
	unk    int32
	bos    int32
}

func loadTinyTokenizer(t testing.TB, model string) *tinyTokenizer {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "tiny_vocab_"+model+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		BOS, UNK   int32    `json:"-"`
		Bos        int32    `json:"bos"`
		Unk        int32    `json:"unk"`
		FirstPiece int32    `json:"first_piece_id"`
		Pieces     []string `json:"pieces"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return &tinyTokenizer{pieces: v.Pieces, first: v.FirstPiece, unk: v.Unk, bos: v.Bos}
}

func (tk *tinyTokenizer) Encode(text string) []int32 {
	var ids []int32
	for i := 0; i < len(text); {
		best := -1
		for j, p := range tk.pieces {
			if strings.HasPrefix(text[i:], p) && (best < 0 || len(p) > len(tk.pieces[best])) {
				best = j
			}
		}
		if best < 0 {
			ids = append(ids, tk.unk)
			_, size := utf8.DecodeRuneInString(text[i:])
			i += size
			continue
		}
		ids = append(ids, tk.first+int32(best))
		i += len(tk.pieces[best])
	}
	return ids
}

// Decode is the text of ids: each piece; BOS, EOS, padding and unknown ids (below the first
// piece) decode to nothing.
func (tk *tinyTokenizer) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		if i := int(id - tk.first); id >= tk.first && i < len(tk.pieces) {
			b.WriteString(tk.pieces[i])
		}
	}
	return b.String()
}

// tinyModels are the checkpoints the reference scores, by the reference's model name.
var tinyModels = map[string]string{
	"gemma": filepath.Join("..", "models", "gemma", "testdata", "mha"),
	"mamba": filepath.Join("..", "models", "mamba", "testdata", "k4_bias_s16"),
}

// loadTinyModel loads a tiny checkpoint with the project's model runtime (lm.Load).
func loadTinyModel(t testing.TB, name string) *lm.Model {
	t.Helper()
	m, err := lm.Load(tinyModels[name], lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type tinyReference struct {
	MaxLength    int  `json:"max_length"`
	AddBOS       bool `json:"add_bos"`
	Formulations map[string]struct {
		Acc                float64 `json:"acc"`
		AccNorm            float64 `json:"acc_norm"`
		AccBytes           float64 `json:"acc_bytes"`
		QuestionsTruncated int     `json:"questions_truncated"`
		Samples            []struct {
			ID         string    `json:"id"`
			LogLiks    []float64 `json:"loglikelihoods"`
			IsGreedy   []bool    `json:"is_greedy"`
			ContTokens []int     `json:"continuation_tokens"`
			Truncated  int       `json:"truncated_tokens"`
			Prediction int       `json:"prediction"`
			Acc        float64   `json:"acc"`
			AccNorm    float64   `json:"acc_norm"`
			AccBytes   float64   `json:"acc_bytes"`
		} `json:"samples"`
	} `json:"formulations"`
}

// readTinyFixtures reads the committed questions and the independent reference's results
// (testdata/reference.py wrote both), by model name.
func readTinyFixtures(t *testing.T) ([]curriculum.Question, map[string]tinyReference) {
	t.Helper()
	qs, err := readQuestionsJSONL(filepath.Join("testdata", "tiny_questions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var refs map[string]tinyReference
	raw, err := os.ReadFile(filepath.Join("testdata", "tiny_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &refs); err != nil {
		t.Fatal(err)
	}
	return qs, refs
}

func TestTinyModelsMatchReference(t *testing.T) {
	qs, refs := readTinyFixtures(t)
	for _, name := range []string{"gemma", "mamba"} {
		t.Run(name, func(t *testing.T) { checkTinyModel(t, name, qs, refs[name]) })
	}
}

func checkTinyModel(t *testing.T, name string, qs []curriculum.Question, ref tinyReference) {
	tk := loadTinyTokenizer(t, name)
	scorer := loadTinyModel(t, name)
	addBOS, err := AddBOSFor(tinyModels[name], scorer.Arch().Family())
	if err != nil || addBOS != ref.AddBOS {
		t.Fatalf("BOS rule %v (%v), reference %v", addBOS, err, ref.AddBOS)
	}
	enc := Encoder{Tokenizer: tk, AddBOS: addBOS, BOS: tk.bos, MaxLength: scorer.Arch().MaxLength()}
	if enc.MaxLength != ref.MaxLength {
		t.Fatalf("model window %d, reference %d", enc.MaxLength, ref.MaxLength)
	}
	for _, form := range []string{Letters, Cloze} {
		task, err := DefaultTask(form)
		if err != nil {
			t.Fatal(err)
		}
		want := ref.Formulations[form]
		var first *Run
		for _, bs := range []int{1, 7, 32} {
			run, err := Evaluate(qs, Options{Task: task, Encoder: enc, Scorer: scorer, BatchSize: bs, ModelKey: "tiny"})
			if err != nil {
				t.Fatal(err)
			}
			if len(run.Samples) != len(want.Samples) {
				t.Fatalf("%s: %d samples, reference %d", form, len(run.Samples), len(want.Samples))
			}
			truncated := 0
			for i, s := range run.Samples {
				w := want.Samples[i]
				if s.Doc.ID != w.ID || s.Prediction != w.Prediction || s.Acc != w.Acc || s.AccNorm != w.AccNorm ||
					s.AccBytes != w.AccBytes || s.TruncatedTokens != w.Truncated ||
					!slices.Equal(s.IsGreedy, w.IsGreedy) || !slices.Equal(s.ContTokens, w.ContTokens) {
					t.Fatalf("%s bs=%d question %s:\n got %+v\nwant %+v", form, bs, w.ID, s, w)
				}
				for c := range s.LogLiks {
					if math.Abs(s.LogLiks[c]-w.LogLiks[c]) > 1e-4*max(1, math.Abs(w.LogLiks[c])) {
						t.Fatalf("%s bs=%d question %s choice %d: loglik %v, reference %v", form, bs, w.ID, c, s.LogLiks[c], w.LogLiks[c])
					}
				}
				if s.TruncatedTokens > 0 {
					truncated++
				}
			}
			if truncated != want.QuestionsTruncated {
				t.Errorf("%s: %d questions truncated, reference %d", form, truncated, want.QuestionsTruncated)
			}
			res, err := run.Results(len(qs))
			if err != nil {
				t.Fatal(err)
			}
			got := res.Results[task.Name]
			if got["acc,none"] != want.Acc || got["acc_norm,none"] != want.AccNorm || got["acc_bytes,none"] != want.AccBytes {
				t.Errorf("%s bs=%d: acc %v acc_norm %v acc_bytes %v; reference %v %v %v", form, bs,
					got["acc,none"], got["acc_norm,none"], got["acc_bytes,none"], want.Acc, want.AccNorm, want.AccBytes)
			}
			if first == nil {
				first = run
				continue
			}
			// Decisions must be identical; the log-likelihoods themselves move in the last float32
			// bits because the Go backend's matmul sums in a different order for a larger batch
			// (measured: up to ~2e-6 relative at batch 32 against batch 1).
			maxDiff := 0.0
			for i, s := range run.Samples {
				f := first.Samples[i]
				if s.Prediction != f.Prediction || s.PredNorm != f.PredNorm || s.Acc != f.Acc || s.AccNorm != f.AccNorm ||
					s.AccBytes != f.AccBytes || !slices.Equal(s.IsGreedy, f.IsGreedy) {
					t.Fatalf("%s: batch size %d changed the decisions on question %d: %+v vs %+v", form, bs, i, s, f)
				}
				for c := range s.LogLiks {
					maxDiff = max(maxDiff, math.Abs(s.LogLiks[c]-f.LogLiks[c])/max(1, math.Abs(f.LogLiks[c])))
				}
			}
			if maxDiff > 1e-5 {
				t.Errorf("%s: batch size %d moved a log-likelihood by %g (relative)", form, bs, maxDiff)
			}
			t.Logf("%s: batch size %d vs 1: largest relative log-likelihood difference %.3g", form, bs, maxDiff)
		}
	}
}
