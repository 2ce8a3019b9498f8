package training

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// Interleaving orders of training items.
const (
	// OrderPaper puts each document chunk followed by its flashcards (the paper's curricula).
	OrderPaper = "paper"
	// OrderFlashcardsFirst puts all flashcards before all documents.
	OrderFlashcardsFirst = "flashcards-first"
	// OrderShuffled shuffles items once (seeded) and the packed rows every epoch.
	OrderShuffled = "shuffled"
)

// Loss masks.
const (
	// MaskAll trains on every token of every item (the paper).
	MaskAll = "all"
	// MaskAnswers trains on the answer tokens of flashcards only (documents stay whole).
	MaskAnswers = "answers"
)

// Example is one tokenized training item.
type Example struct {
	// Name identifies the item in errors ("train[12] qna chunk products/0003").
	Name string
	// IDs are the tokens, BOS/EOS included.
	IDs []int32
	// Train[i] says whether token i is a loss target (predicted from the tokens before it).
	Train []bool
	// Splittable documents may be cut into windows; flashcards may not.
	Splittable bool
	// Weights, when set (one per token, as IDs), weighs each target's loss: the step's loss is
	// the weighted mean over targets, so an answer weighted 3 counts three times a passage
	// token. Only Train positions count. Nil: every target weighs 1.
	Weights []float32
}

// DataOptions control how curriculum items become token sequences.
type DataOptions struct {
	// Template renders flashcards (instruction = question, response = answer).
	Template prompt.Template
	// Mask is MaskAll or MaskAnswers.
	Mask string
	// Order is OrderPaper, OrderFlashcardsFirst or OrderShuffled.
	Order string
	// Seed seeds OrderShuffled.
	Seed int64
}

// Encoder turns items into Examples with a tokenizer.
type Encoder struct {
	Tok     tokenizer.Tokenizer
	Options DataOptions
	// UseBOS prefixes documents and flashcards with the tokenizer's BOS (set it when the model's
	// tokenizer adds BOS: tokenizer.AddsBOS); without it flashcards get BOS only when the
	// template writes it.
	UseBOS bool
}

// Doc encodes a document chunk: [BOS] tokens(text) EOS.
func (e *Encoder) Doc(name, text string) (Example, error) {
	sp := e.Tok.Special()
	if sp.EOS < 0 {
		return Example{}, fmt.Errorf("%s: the tokenizer has no EOS token", name)
	}
	var ids []int32
	if e.UseBOS && sp.BOS >= 0 {
		ids = append(ids, sp.BOS)
	}
	ids = append(ids, e.Tok.Encode(text)...)
	ids = append(ids, sp.EOS)
	train := make([]bool, len(ids))
	for i := range train {
		train[i] = i > 0
	}
	return Example{Name: name, IDs: ids, Train: train, Splittable: true}, nil
}

// Flashcard encodes an instruction/response pair with the template; with MaskAnswers only the
// response tokens are targets.
func (e *Encoder) Flashcard(name string, ex prompt.Example) (Example, error) {
	enc, err := e.Options.Template.Encode(e.Tok, ex)
	if err != nil {
		return Example{}, fmt.Errorf("%s: %w", name, err)
	}
	ids := enc.IDs
	sp := e.Tok.Special()
	if !e.Options.Template.AddEOS && sp.EOS >= 0 {
		ids = append(ids, sp.EOS) // every item ends with EOS so the model learns to stop
	}
	if e.UseBOS && sp.BOS >= 0 && (len(ids) == 0 || ids[0] != sp.BOS) {
		ids = append([]int32{sp.BOS}, ids...)
		enc.PromptLen++
	}
	train := make([]bool, len(ids))
	for i := range train {
		train[i] = i > 0 && (e.Options.Mask != MaskAnswers || i >= enc.PromptLen)
	}
	return Example{Name: name, IDs: ids, Train: train}, nil
}

// Items encodes curriculum items in the requested interleaving order. split names the split in
// errors ("train", "validation").
func (e *Encoder) Items(split string, items []curriculum.Item) ([]Example, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("curriculum %s split is empty: nothing to train on", split)
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	switch e.Options.Order {
	case OrderPaper, "":
		// Group by chunk in order of first appearance: the doc, then its flashcards.
		groups := map[string][]int{}
		var keys []string
		for i, it := range items {
			k := it.ChunkID
			if k == "" {
				k = fmt.Sprintf("\x00%d", i)
			}
			if _, ok := groups[k]; !ok {
				keys = append(keys, k)
			}
			groups[k] = append(groups[k], i)
		}
		idx = idx[:0]
		for _, k := range keys {
			g := groups[k]
			for _, i := range g {
				if items[i].Type == curriculum.TypeDoc {
					idx = append(idx, i)
				}
			}
			for _, i := range g {
				if items[i].Type != curriculum.TypeDoc {
					idx = append(idx, i)
				}
			}
		}
	case OrderFlashcardsFirst:
		idx = idx[:0]
		for pass := 0; pass < 2; pass++ {
			for i, it := range items {
				if (it.Type == curriculum.TypeDoc) == (pass == 1) {
					idx = append(idx, i)
				}
			}
		}
	case OrderShuffled:
		rng := rand.New(rand.NewPCG(uint64(e.Options.Seed), 0x5eed))
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	default:
		return nil, fmt.Errorf("unknown order %q (use %s, %s or %s)", e.Options.Order, OrderPaper, OrderFlashcardsFirst, OrderShuffled)
	}
	out := make([]Example, 0, len(items))
	for _, i := range idx {
		it := items[i]
		name := fmt.Sprintf("%s[%d] %s chunk %q", split, i, it.Type, it.ChunkID)
		var ex Example
		var err error
		switch it.Type {
		case curriculum.TypeDoc:
			ex, err = e.Doc(name, it.Text)
		case curriculum.TypeQnA:
			ex, err = e.Flashcard(name, prompt.Example{Instruction: it.Question, Response: it.Answer})
		default:
			err = fmt.Errorf("%s: unknown item type %q", name, it.Type)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ex)
	}
	return out, nil
}

// ReplayRecord is one general instruction example (Alpaca fields).
type ReplayRecord struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input,omitempty"`
	Output      string `json:"output"`
}

// ReadReplay reads a JSONL file of {instruction, input?, output}.
func ReadReplay(path string) ([]ReplayRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay data: %w", err)
	}
	defer f.Close()
	var out []ReplayRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		var r ReplayRecord
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if r.Instruction == "" || r.Output == "" {
			return nil, fmt.Errorf("%s:%d: instruction and output are required", path, line)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return out, nil
}

// WriteReplay writes records as ReadReplay reads them (one JSON object a line).
func WriteReplay(path string, recs []ReplayRecord) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// MixReplay inserts round(fraction*len(examples)) replay flashcards (drawn with the seed,
// cycling if there are too few) at seeded random positions.
func (e *Encoder) MixReplay(examples []Example, recs []ReplayRecord, fraction float64, seed int64) ([]Example, error) {
	n := int(fraction*float64(len(examples)) + 0.5)
	if n <= 0 || len(recs) == 0 {
		return examples, nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x4e91a7))
	perm := rng.Perm(len(recs))
	out := examples
	for k := 0; k < n; k++ {
		r := recs[perm[k%len(recs)]]
		ex, err := e.Flashcard(fmt.Sprintf("replay[%d]", perm[k%len(recs)]), prompt.Example{Instruction: r.Instruction, Input: r.Input, Response: r.Output})
		if err != nil {
			return nil, err
		}
		pos := rng.IntN(len(out) + 1)
		out = append(out[:pos:pos], append([]Example{ex}, out[pos:]...)...)
	}
	return out, nil
}
