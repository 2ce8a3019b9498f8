package evaluation

// The done-when check of issue 6: on the tiny Gemma checkpoint of models/gemma/testdata and a toy
// tokenizer, every log-likelihood, is_greedy, acc, acc_norm and acc_bytes equals the independent
// reference (testdata/reference.py: plain Python harness semantics + plain-torch Gemma) on 300
// questions, for both formulations, and the results do not change with batch size (1, 7, 32).
//
// tinyScorer runs the model's lm.Architecture graph directly; it stands in for lm.Model, which
// another package provides, and is deliberately simple: one row per request, fixed width.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
	_ "github.com/perpetual-ml/perpetual/models/gemma" // registers the "gemma" architecture
	"github.com/perpetual-ml/perpetual/models/lm"
)

// tinyTokenizer is the toy tokenizer of testdata/tiny_vocab.json: greedy longest match.
type tinyTokenizer struct {
	pieces []string
	first  int32
	unk    int32
	bos    int32
}

func loadTinyTokenizer(t testing.TB) *tinyTokenizer {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "tiny_vocab.json"))
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
			_, size := decodeRune(text[i:])
			i += size
			continue
		}
		ids = append(ids, tk.first+int32(best))
		i += len(tk.pieces[best])
	}
	return ids
}

func decodeRune(s string) (rune, int) {
	for i, r := range s {
		if i == 0 {
			n := len(string(r))
			if r == '\uFFFD' && !strings.HasPrefix(s, "\uFFFD") {
				n = 1
			}
			return r, n
		}
	}
	return 0, 1
}

// tinyScorer scores requests with an architecture's Logits graph, weights as graph inputs.
type tinyScorer struct {
	arch    lm.Architecture
	params  []*tensors.Tensor
	width   int
	execs   map[int]*graph.Exec
	batches []int // batch sizes seen, to check batching happened
}

func newTinyScorer(t testing.TB, dir string) *tinyScorer {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	arch, err := lm.NewArchitecture(raw)
	if err != nil {
		t.Fatal(err)
	}
	weights, shapes := readF32Safetensors(t, filepath.Join(dir, "model.safetensors"))
	s := &tinyScorer{arch: arch, width: arch.MaxLength(), execs: map[int]*graph.Exec{}}
	for _, spec := range arch.Specs() {
		w, ok := weights[spec.Name]
		for _, a := range spec.Aliases {
			if !ok {
				w, ok = weights[a]
			}
		}
		if !ok || !slices.Equal(shapes[spec.Name], spec.Shape) {
			t.Fatalf("%s: parameter %s missing or misshapen", dir, spec.Name)
		}
		s.params = append(s.params, tensors.FromFlatDataAndDimensions(w, spec.Shape...))
	}
	return s
}

func readF32Safetensors(t testing.TB, path string) (map[string][]float32, map[string][]int) {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(buf)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	data := buf[8+n:]
	vals, shapes := map[string][]float32{}, map[string][]int{}
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			DType   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || e.DType != "F32" {
			t.Fatalf("%s: %s: %v %s", path, name, err, e.DType)
		}
		b := data[e.Offsets[0]:e.Offsets[1]]
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		vals[name], shapes[name] = v, e.Shape
	}
	return vals, shapes
}

func (s *tinyScorer) exec(batch int) (*graph.Exec, error) {
	if e, ok := s.execs[batch]; ok {
		return e, nil
	}
	be, err := backend.Shared()
	if err != nil {
		return nil, err
	}
	specs := s.arch.Specs()
	e, err := graph.NewExec(be, func(inputs []*graph.Node) *graph.Node {
		byName := map[string]*graph.Node{}
		for i, sp := range specs {
			byName[sp.Name] = inputs[i]
		}
		n := len(specs)
		return s.arch.Logits(func(name string) *graph.Node { return byName[name] }, inputs[n], inputs[n+1], inputs[n+2])
	})
	s.execs[batch] = e
	return e, err
}

// LogLikelihood feeds (context+continuation)[:-1] per request, batchSize rows at a time, padded
// to the model window; identical inputs within a batch share a row.
func (s *tinyScorer) LogLikelihood(reqs []Request, batchSize int) ([]Result, error) {
	out := make([]Result, len(reqs))
	for start := 0; start < len(reqs); start += batchSize {
		chunk := reqs[start:min(start+batchSize, len(reqs))]
		s.batches = append(s.batches, len(chunk))
		rowOf := map[string]int{}
		var rows [][]int32
		idx := make([]int, len(chunk))
		for i, r := range chunk {
			full := append(slices.Clone(r.Context), r.Continuation...)
			inp := full[:len(full)-1]
			if len(inp) > s.width {
				return nil, fmt.Errorf("request of %d tokens exceeds the window %d", len(inp), s.width)
			}
			k := fmt.Sprint(inp)
			row, ok := rowOf[k]
			if !ok {
				row = len(rows)
				rowOf[k] = row
				rows = append(rows, inp)
			}
			idx[i] = row
		}
		B := batchSize // fixed batch shape: one compiled graph per batch size
		tok, pos, seg := make([][]int32, B), make([][]int32, B), make([][]int32, B)
		for b := range B {
			tok[b], pos[b], seg[b] = make([]int32, s.width), make([]int32, s.width), make([]int32, s.width)
			if b < len(rows) {
				for j, id := range rows[b] {
					tok[b][j], pos[b][j], seg[b][j] = id, int32(j), 1
				}
			}
		}
		e, err := s.exec(B)
		if err != nil {
			return nil, err
		}
		args := make([]any, 0, len(s.params)+3)
		for _, p := range s.params {
			args = append(args, p)
		}
		args = append(args, tensors.FromValue(tok), tensors.FromValue(pos), tensors.FromValue(seg))
		res, err := e.Exec(args...)
		if err != nil {
			return nil, err
		}
		logits := res[0].Value().([][][]float32)
		for i, r := range chunk {
			row := logits[idx[i]]
			inpLen := len(r.Context) + len(r.Continuation) - 1
			var lp float64
			greedy := true
			for j, target := range r.Continuation {
				l := row[inpLen-len(r.Continuation)+j]
				lse, best := logSumExp(l)
				lp += float64(l[target]) - lse
				if best != int(target) {
					greedy = false
				}
			}
			out[start+i] = Result{LogProb: lp, IsGreedy: greedy, NumTokens: len(r.Continuation)}
		}
	}
	return out, nil
}

func logSumExp(l []float32) (float64, int) {
	best := 0
	for i, x := range l {
		if x > l[best] {
			best = i
		}
	}
	m := float64(l[best])
	s := 0.0
	for _, x := range l {
		s += math.Exp(float64(x) - m)
	}
	return m + math.Log(s), best
}

type tinyReference struct {
	MaxLength    int `json:"max_length"`
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

func TestTinyGemmaMatchesReference(t *testing.T) {
	tk := loadTinyTokenizer(t)
	qs, err := readQuestionsJSONL(filepath.Join("testdata", "tiny_questions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var ref tinyReference
	raw, err := os.ReadFile(filepath.Join("testdata", "tiny_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	scorer := newTinyScorer(t, filepath.Join("..", "models", "gemma", "testdata", "mha"))
	enc := Encoder{Tokenizer: tk, AddBOS: true, BOS: tk.bos, MaxLength: scorer.arch.MaxLength()}
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
