package prompt

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

func mustFormat(t *testing.T, name string) Template {
	t.Helper()
	f, err := Format(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAlpacaStrings(t *testing.T) {
	f := mustFormat(t, "alpaca")
	got, boundary := f.Render(Example{Instruction: "What is the price of the X200?", Response: "$349."})
	want := "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\nWhat is the price of the X200?\n\n### Response:\n$349."
	if got != want {
		t.Errorf("Render =\n%q\nwant\n%q", got, want)
	}
	if got[:boundary] != strings.TrimSuffix(want, "$349.") {
		t.Errorf("boundary %d cuts %q", boundary, got[:boundary])
	}
	withInput := f.RenderPrompt("Summarize.", "Some context.")
	wantInput := "Below is an instruction that describes a task, paired with an input that provides further context. " +
		"Write a response that appropriately completes the request.\n\n### Instruction:\nSummarize.\n\n### Input:\nSome context.\n\n### Response:\n"
	if withInput != wantInput {
		t.Errorf("RenderPrompt with input =\n%q\nwant\n%q", withInput, wantInput)
	}
	if !f.AddEOS {
		t.Error("alpaca examples should end with EOS")
	}
}

func TestGemmaStrings(t *testing.T) {
	f := mustFormat(t, "gemma")
	if got, want := f.RenderPrompt("Hi there", ""), "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n"; got != want {
		t.Errorf("RenderPrompt = %q, want %q", got, want)
	}
	text, boundary := f.Render(Example{Instruction: "Q?", Input: "ctx", Response: "A."})
	want := "<bos><start_of_turn>user\nctx\n\nQ?<end_of_turn>\n<start_of_turn>model\nA.<end_of_turn>\n"
	if text != want || text[boundary:] != "A.<end_of_turn>\n" {
		t.Errorf("Render = %q (boundary %d), want %q", text, boundary, want)
	}
}

func TestPlaceholdersInUserTextStay(t *testing.T) {
	f := mustFormat(t, "alpaca")
	text, _ := f.Render(Example{Instruction: "say {response} and {input}", Response: "{instruction}"})
	if !strings.Contains(text, "say {response} and {input}") || !strings.HasSuffix(text, "### Response:\n{instruction}") {
		t.Errorf("user braces were substituted: %q", text)
	}
}

func TestUnknownFormatAndBadFiles(t *testing.T) {
	if _, err := Format("nope"); err == nil || !strings.Contains(err.Error(), "alpaca") {
		t.Errorf("err = %v, want one listing the known formats", err)
	}
	if !slices.Equal(Names(), []string{"alpaca", "gemma", "plain"}) {
		t.Errorf("Names = %v", Names())
	}
	dir := t.TempDir()
	cases := map[string]string{
		"broken.json":     `{"x": `,
		"noinstr.json":    `{"x": {"prompt": "hello", "prompt_with_input": "{instruction}{input}", "response": "{response}"}}`,
		"twice.json":      `{"x": {"prompt": "{instruction}{instruction}", "prompt_with_input": "{instruction}{input}", "response": "{response}"}}`,
		"unknown.json":    `{"x": {"prompt": "{instruction}{name}", "prompt_with_input": "{instruction}{input}", "response": "{response}"}}`,
		"unclosed.json":   `{"x": {"prompt": "{instruction", "prompt_with_input": "{instruction}{input}", "response": "{response}"}}`,
		"noresp.json":     `{"x": {"prompt": "{instruction}", "prompt_with_input": "{instruction}{input}", "response": "r"}}`,
		"noinputvar.json": `{"x": {"prompt": "{instruction}", "prompt_with_input": "{instruction}", "response": "{response}"}}`,
	}
	for name, content := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"mine": {"prompt": "Q: {instruction}\nA: ", "prompt_with_input": "{input}\nQ: {instruction}\nA: ", "response": "{response}"}}`), 0o644)
	m, err := LoadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := m["mine"].RenderPrompt("why", ""); got != "Q: why\nA: " || m["mine"].Name != "mine" {
		t.Errorf("custom format rendered %q", got)
	}
}

func trainedTokenizer(t *testing.T, specials []string) tokenizer.Tokenizer {
	t.Helper()
	corpus := []string{strings.Repeat("Below is an instruction that describes a task. ### Response: the answer is 42. ", 20)}
	data, err := tokenizer.Train(corpus, 320, tokenizer.TrainOptions{SpecialTokens: specials})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadJSON(data, "trained")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEncodeMasksPromptAndAddsSpecials(t *testing.T) {
	tok := trainedTokenizer(t, []string{"<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"})
	ex := Example{Instruction: "What is the answer?", Response: "42"}

	gemma := mustFormat(t, "gemma")
	enc, err := gemma.Encode(tok, ex)
	if err != nil {
		t.Fatal(err)
	}
	text, boundary := gemma.Render(ex)
	if enc.IDs[0] != 0 || tok.Decode(enc.IDs) != text {
		t.Errorf("ids %v decode to %q, want BOS first and %q", enc.IDs, tok.Decode(enc.IDs), text)
	}
	if got := tok.Decode(enc.IDs[:enc.PromptLen]); got != text[:boundary] {
		t.Errorf("prompt part decodes to %q, want %q", got, text[:boundary])
	}
	if enc.IDs[len(enc.IDs)-2] != 3 { // <end_of_turn> then "\n"; gemma adds no EOS
		t.Errorf("gemma example should end with <end_of_turn>\\n: %q", tok.Pieces(enc.IDs))
	}

	alpaca := mustFormat(t, "alpaca")
	enc, err = alpaca.Encode(tok, ex)
	if err != nil {
		t.Fatal(err)
	}
	if enc.IDs[len(enc.IDs)-1] != 1 || enc.IDs[0] == 0 {
		t.Errorf("alpaca: want EOS last and no BOS, got %q", tok.Pieces(enc.IDs))
	}
	if got := tok.Decode(enc.IDs[enc.PromptLen : len(enc.IDs)-1]); got != "42" {
		t.Errorf("response part decodes to %q", got)
	}

	noEOS := trainedTokenizer(t, nil)
	if _, err := alpaca.Encode(noEOS, ex); err == nil {
		t.Error("alpaca with a tokenizer without EOS: no error")
	}
}
