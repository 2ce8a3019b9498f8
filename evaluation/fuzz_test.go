package evaluation

import (
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/curriculum"
)

// FuzzParseTask: any bytes give a task or an error naming the source, never a panic; a task
// that parses renders a prompt or returns an error.
func FuzzParseTask(f *testing.F) {
	for _, name := range DefaultTasks() {
		raw, _ := taskFiles.ReadFile("tasks/" + name + ".yaml")
		f.Add(string(raw))
	}
	f.Add("task: t\ndoc_to_text: '{{choices[3]}} {c9}'\ndoc_to_choice: [A, B]\n")
	f.Add("task: t\ndoc_to_text: '{{ question }'\ndoc_to_choice: choices\nnum_fewshot: -1\n")
	f.Fuzz(func(t *testing.T, src string) {
		task, err := ParseTask([]byte(src), "fuzz.yaml")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		q := curriculum.Question{ID: "f", Question: "q?", Choices: []string{"a", "b", "c", "d"}, Answer: 1, Kind: curriculum.KindSeen}
		_, _ = task.Prompt(&q)
		_ = task.Choices(&q)
	})
}

// FuzzEncodePair checks the harness invariants on arbitrary text: the continuation is non-empty,
// context + continuation fit the window plus one, and without truncation the context is the
// context's own encoding.
func FuzzEncodePair(f *testing.F) {
	f.Add("Question: what?\nAnswer:", " A", 8)
	f.Add("trailing  \n", "x", 0)
	f.Add("", "é", 3)
	f.Fuzz(func(t *testing.T, ctx, cont string, window int) {
		window = window % 64
		if window < 0 {
			window = -window
		}
		tk := &tinyTokenizer{pieces: []string{" ", "A", " A", "an", "Answer", ":", "the", "\n"}, first: 4, unk: 3, bos: 2}
		e := Encoder{Tokenizer: tk, AddBOS: true, BOS: 2, MaxLength: window}
		p, err := e.EncodePair(ctx, cont)
		if err != nil {
			return
		}
		if len(p.Continuation) == 0 {
			t.Fatal("empty continuation")
		}
		if window > 0 && len(p.Context)+len(p.Continuation) > window+1 {
			t.Fatalf("%d+%d tokens exceed window %d+1", len(p.Context), len(p.Continuation), window)
		}
		c, _ := SplitTrailingSpace(ctx, cont)
		if p.Truncated == 0 && c != "" && !slices.Equal(p.Context, e.encode(c)) {
			t.Fatalf("context %v is not the context's own encoding %v", p.Context, e.encode(c))
		}
	})
}
