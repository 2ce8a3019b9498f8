package training

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// byteTok is a minimal tokenizer for data tests: one id per byte, plus BOS 256 and EOS 257.
type byteTok struct{}

func (byteTok) Encode(s string) []int32 {
	var out []int32
	for _, b := range []byte(s) {
		out = append(out, int32(b))
	}
	return out
}
func (byteTok) Decode(ids []int32) string {
	var b []byte
	for _, id := range ids {
		if id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}
func (byteTok) Pieces(ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		switch {
		case id < 256:
			out[i] = string([]byte{byte(id)})
		case id == 256:
			out[i] = "<bos>"
		case id == 257:
			out[i] = "<eos>"
		}
	}
	return out
}
func (byteTok) VocabSize() int { return 258 }
func (byteTok) Special() tokenizer.SpecialTokens {
	return tokenizer.SpecialTokens{BOS: 256, EOS: 257, PAD: -1, UNK: -1}
}
func (byteTok) TokenID(p string) (int32, bool) { return 0, false }

func items() []curriculum.Item {
	return []curriculum.Item{
		{Type: curriculum.TypeQnA, ChunkID: "a", Question: "qa1", Answer: "A1"},
		{Type: curriculum.TypeDoc, ChunkID: "a", Text: "doc a"},
		{Type: curriculum.TypeDoc, ChunkID: "b", Text: "doc b"},
		{Type: curriculum.TypeQnA, ChunkID: "b", Question: "qb1", Answer: "B1"},
		{Type: curriculum.TypeQnA, ChunkID: "a", Question: "qa2", Answer: "A2"},
	}
}

func names(exs []Example) []string {
	var out []string
	for _, e := range exs {
		out = append(out, e.Name)
	}
	return out
}

func TestOrders(t *testing.T) {
	tmpl, _ := prompt.Format("plain")
	for order, want := range map[string][]int{OrderPaper: {1, 0, 4, 2, 3}, OrderFlashcardsFirst: {0, 3, 4, 1, 2}} {
		enc := &Encoder{Tok: byteTok{}, Options: DataOptions{Template: tmpl, Order: order}}
		exs, err := enc.Items("train", items())
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, e := range exs {
			var i int
			for j, n := range []string{"train[0]", "train[1]", "train[2]", "train[3]", "train[4]"} {
				if len(e.Name) >= len(n) && e.Name[:len(n)] == n {
					i = j
				}
			}
			got = append(got, i)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: order %v, want %v", order, got, want)
		}
	}
	enc := &Encoder{Tok: byteTok{}, Options: DataOptions{Template: tmpl, Order: OrderShuffled, Seed: 3}}
	a, _ := enc.Items("train", items())
	b, _ := enc.Items("train", items())
	if !slices.Equal(names(a), names(b)) {
		t.Error("shuffled order is not reproducible from the seed")
	}
	if _, err := enc.Items("train", nil); err == nil {
		t.Error("empty split accepted")
	}
}

func TestMasksAndSpecialTokens(t *testing.T) {
	tmpl, _ := prompt.Format("plain")
	enc := &Encoder{Tok: byteTok{}, Options: DataOptions{Template: tmpl, Mask: MaskAnswers}, UseBOS: true}
	fc, err := enc.Flashcard("fc", prompt.Example{Instruction: "Q?", Response: "yes"})
	if err != nil {
		t.Fatal(err)
	}
	// <bos> Q ? y e s <eos>: targets are the answer and EOS only.
	if !slices.Equal(fc.IDs, []int32{256, 'Q', '?', 'y', 'e', 's', 257}) {
		t.Errorf("ids %v", fc.IDs)
	}
	if !slices.Equal(fc.Train, []bool{false, false, false, true, true, true, true}) {
		t.Errorf("answer mask %v", fc.Train)
	}
	enc.Options.Mask = MaskAll
	fc, _ = enc.Flashcard("fc", prompt.Example{Instruction: "Q?", Response: "yes"})
	if slices.Contains(fc.Train[1:], false) {
		t.Errorf("mask all %v", fc.Train)
	}
	doc, _ := enc.Doc("d", "hi")
	if !slices.Equal(doc.IDs, []int32{256, 'h', 'i', 257}) || !doc.Splittable {
		t.Errorf("doc %+v", doc)
	}
}

func TestPackAndWindows(t *testing.T) {
	tmpl, _ := prompt.Format("plain")
	enc := &Encoder{Tok: byteTok{}, Options: DataOptions{Template: tmpl}}
	long, _ := enc.Doc("long", "abcdefghijklmnopqrstuvwxyz") // 27 tokens
	short, _ := enc.Doc("short", "xy")                       // 3 tokens
	rows, err := Pack([]Example{long, short}, 12, true)
	if err != nil {
		t.Fatal(err)
	}
	// Windows overlap by one token: 26 targets of the long doc are each predicted once.
	targets := 0
	for _, r := range rows {
		targets += r.NumTargets
		if len(r.Tokens) > 12 {
			t.Errorf("row of %d tokens", len(r.Tokens))
		}
	}
	if targets != 26+2 {
		t.Errorf("%d targets, want 28", targets)
	}
	last := rows[len(rows)-1]
	if !slices.Equal(last.Segments[len(last.Segments)-3:], []int32{2, 2, 2}) || !slices.Equal(last.Positions[len(last.Positions)-3:], []int32{0, 1, 2}) {
		t.Errorf("short doc not packed after the last window as its own segment: %+v", last)
	}
	fc, _ := enc.Flashcard("card 7", prompt.Example{Instruction: "a long question", Response: "an answer"})
	if _, err := Pack([]Example{fc}, 10, true); err == nil || !contains(err.Error(), "card 7") {
		t.Errorf("oversized flashcard: %v", err)
	}
	b := MakeBatch(rows[:1], 2, 14)
	if len(b.Tokens) != 28 || b.Segments[14] != 0 || b.NumTargets != rows[0].NumTargets {
		t.Errorf("batch %+v", b)
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alpaca.jsonl")
	var data []byte
	for _, r := range []ReplayRecord{{Instruction: "Say hi", Output: "hi"}, {Instruction: "Add", Input: "1 2", Output: "3"}} {
		b, _ := json.Marshal(r)
		data = append(append(data, b...), '\n')
	}
	os.WriteFile(path, data, 0o644)
	recs, err := ReadReplay(path)
	if err != nil || len(recs) != 2 || recs[1].Input != "1 2" {
		t.Fatalf("%v %+v", err, recs)
	}
	tmpl, _ := prompt.Format("alpaca")
	enc := &Encoder{Tok: byteTok{}, Options: DataOptions{Template: tmpl}}
	exs, _ := enc.Items("train", items())
	mixed, err := enc.MixReplay(exs, recs, 0.4, 1)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range mixed {
		if contains(e.Name, "replay[") {
			n++
		}
	}
	if n != 2 || len(mixed) != 7 {
		t.Errorf("%d replay items in %d, want 2 in 7", n, len(mixed))
	}
}

func TestLRSchedule(t *testing.T) {
	// Hugging Face get_linear_schedule_with_warmup with 2 warm-up steps of 6.
	want := []float64{0, 0.5, 1, 0.75, 0.5, 0.25}
	for i, w := range want {
		if got := LRAt(1, i, 2, 6); got != w {
			t.Errorf("step %d: lr %v, want %v", i, got, w)
		}
	}
}

// Per-token loss weights reach the row's weights at their targets (windows included), leave
// non-targets at 0, do not change the data hash of unweighted data, and are refused when they
// do not match the tokens or are not finite and non-negative.
func TestPackWeights(t *testing.T) {
	ex := Example{Name: "weighted", IDs: []int32{1, 2, 3, 4, 5, 6}, Train: []bool{false, false, true, true, true, true},
		Weights: []float32{9, 9, 1, 3, 3, 0.5}, Splittable: true}
	rows, err := Pack([]Example{ex}, 4, true) // windows [1 2 3 4] and [4 5 6]
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	for _, r := range rows {
		got = append(got, r.Weights...)
	}
	// Targets: 3 (w 1), 4 (w 3) in the first window; 5 (w 3), 6 (w 0.5) in the second (its
	// first token is predicted by the first window); last positions have no target.
	want := []float32{0, 1, 3, 0, 3, 0.5, 0}
	if !slices.Equal(got, want) {
		t.Fatalf("row weights %v, want %v", got, want)
	}
	plain := ex
	plain.Weights = nil
	ones := ex
	ones.Weights = []float32{1, 1, 1, 1, 1, 1}
	if dataHash([]Example{plain}) == dataHash([]Example{ex}) || dataHash([]Example{plain}) == dataHash([]Example{ones}) {
		t.Error("weights do not change the data hash")
	}
	for _, bad := range [][]float32{{1, 1}, {1, 1, 1, -1, 1, 1}, {1, 1, float32(math.NaN()), 1, 1, 1}, {1, 1, float32(math.Inf(1)), 1, 1, 1}} {
		b := ex
		b.Weights = bad
		if _, err := Pack([]Example{b}, 8, true); err == nil || !contains(err.Error(), "weighted") || !contains(err.Error(), "weight") {
			t.Errorf("weights %v: error %v", bad, err)
		}
	}
}
