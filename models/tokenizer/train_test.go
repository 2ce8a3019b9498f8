package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// trainingCorpus is a small deterministic English-like corpus with repeated words, so merges form.
func trainingCorpus() []string {
	words := strings.Fields("the model learns new facts from documents and flashcards while the " +
		"instruction tuned model answers questions about products code and papers learning rate " +
		"tokens training evaluation perpetual knowledge")
	var docs []string
	for i := range 60 {
		var b strings.Builder
		for j := range 40 {
			b.WriteString(words[(i*7+j*j)%len(words)])
			if j%9 == 8 {
				b.WriteString(".\n")
			} else {
				b.WriteByte(' ')
			}
		}
		fmt.Fprintf(&b, "Fact %d: item-%03d costs $%d.%02d", i, i, i*13, i%100)
		docs = append(docs, b.String())
	}
	return docs
}

func TestTrainLearnsMerges(t *testing.T) {
	data, err := Train(trainingCorpus(), 400, TrainOptions{SpecialTokens: []string{"<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := LoadJSON(data, "trained")
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 400 {
		t.Fatalf("VocabSize = %d, want 400", tok.VocabSize())
	}
	// Frequent words become single tokens; the first merge is the most frequent pair.
	for _, w := range []string{" model", " the", " learning"} {
		if ids := tok.Encode(w); len(ids) != 1 {
			t.Errorf("Encode(%q) = %v %q, want one token", w, ids, tok.Pieces(ids))
		}
	}
	text := "the model learns <|endoftext|> unseen wörds 123"
	ids := tok.Encode(text)
	if !slices.Contains(ids, 0) {
		t.Errorf("special token not matched in %v", tok.Pieces(ids))
	}
	if got := tok.Decode(ids); got != text {
		t.Errorf("round trip %q -> %q", text, got)
	}
	// Deterministic: the same corpus gives the same file.
	again, err := Train(trainingCorpus(), 400, TrainOptions{SpecialTokens: []string{"<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(data) {
		t.Error("Train is not deterministic")
	}
}

func TestTrainStopsWhenNothingRepeats(t *testing.T) {
	data, err := Train([]string{"abc"}, 1000, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := LoadJSON(data, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 256 {
		t.Errorf("VocabSize = %d, want 256 (no pair occurs twice)", tok.VocabSize())
	}
	if got := tok.Encode("abc"); len(got) != 3 {
		t.Errorf("Encode(abc) = %v, want 3 byte tokens", got)
	}
}

func TestTrainRejectsBadOptions(t *testing.T) {
	if _, err := Train(nil, 100, TrainOptions{}); err == nil || !strings.Contains(err.Error(), "vocabSize") {
		t.Errorf("vocabSize below 256: err = %v", err)
	}
	if _, err := Train(nil, 300, TrainOptions{SpecialTokens: []string{"<x>", "<x>"}}); err == nil {
		t.Error("duplicate special token accepted")
	}
	if _, err := Train(nil, 300, TrainOptions{SpecialTokens: []string{"a"}}); err == nil {
		t.Error("special token clashing with a byte token accepted")
	}
}

// Encode is safe for concurrent use (the BPE word cache is shared).
func TestConcurrentEncode(t *testing.T) {
	data, err := Train(trainingCorpus(), 500, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := LoadJSON(data, "trained")
	if err != nil {
		t.Fatal(err)
	}
	texts := append(trainingCorpus(), conformanceCorpus...)
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i] = tok.Encode(s)
	}
	fresh, _ := LoadJSON(data, "trained")
	errs := make(chan string, 4)
	for g := range 4 {
		go func() {
			for i := range texts {
				j := (i + g*17) % len(texts)
				if got := fresh.Encode(texts[j]); !slices.Equal(got, want[j]) {
					errs <- texts[j]
					return
				}
			}
			errs <- ""
		}()
	}
	for range 4 {
		if s := <-errs; s != "" {
			t.Errorf("concurrent Encode(%q) differs", s)
		}
	}
}
