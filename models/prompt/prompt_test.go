package prompt

import (
	"encoding/json"
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

// Gemma 2 and Gemma 3 instruct models use Gemma 1's turns, so "gemma" is their format too. Their
// chat templates (gemma-2-2b-it: {{ bos_token }} ... {{ '<start_of_turn>' + role + '\n' +
// message['content'] | trim + '<end_of_turn>\n' }} with role 'model' for 'assistant', then
// '<start_of_turn>model\n' for add_generation_prompt; gemma-3-1b-it the same, a system message
// being folded into the first user turn) render [user: Q, assistant: A] as below.
func TestGemmaFormatIsGemma2And3Turns(t *testing.T) {
	f := mustFormat(t, "gemma")
	text, boundary := f.Render(Example{Instruction: "What is 2+2?", Response: "4."})
	prompt := "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n"
	if text != prompt+"4.<end_of_turn>\n" || boundary != len(prompt) {
		t.Errorf("Render = %q (boundary %d)", text, boundary)
	}
	if f.BOS != "<bos>" || f.EndOfTurn != "<end_of_turn>" || f.AddEOS {
		t.Errorf("bos %q, end_of_turn %q, add_eos %v", f.BOS, f.EndOfTurn, f.AddEOS)
	}
}

// The chat formats render a one-turn conversation [user: instruction, assistant: response]
// exactly as the models' Hugging Face chat templates do (the templates are quoted in each case);
// the prompt is the template's rendering with add_generation_prompt=True of the user turn alone.
func TestChatFormatsMatchTheTemplates(t *testing.T) {
	cases := []struct {
		format, prompt, response, bos, eot string
	}{
		// Meta-Llama-3-8B-Instruct: {% set content = '<|start_header_id|>' + message['role'] +
		// '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0
		// %}{% set content = bos_token + content %}{% endif %}{{ content }} ... {% if
		// add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
		{"llama3",
			"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
			"4.<|eot_id|>", "<|begin_of_text|>", "<|eot_id|>"},
		// ChatML as Qwen's templates write turns: '<|im_start|>' + message.role + '\n' +
		// message.content + '<|im_end|>' + '\n'; generation prompt '<|im_start|>assistant\n'.
		{"chatml",
			"<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
			"4.<|im_end|>\n", "", "<|im_end|>"},
		// Qwen2.5-Instruct: without a system message the template first writes '<|im_start|>system\nYou
		// are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n'.
		{"qwen2.5",
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
				"<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
			"4.<|im_end|>\n", "", "<|im_end|>"},
		// Qwen3: the generation prompt with enable_thinking=false is '<|im_start|>assistant\n' +
		// '<think>\n\n</think>\n\n'; a final assistant answer without reasoning_content renders as
		// '<|im_start|>assistant\n<think>\n' + '' + '\n</think>\n\n' + content + '<|im_end|>\n'.
		{"qwen3",
			"<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
			"4.<|im_end|>\n", "", "<|im_end|>"},
	}
	for _, c := range cases {
		f := mustFormat(t, c.format)
		text, boundary := f.Render(Example{Instruction: "What is 2+2?", Response: "4."})
		if text != c.prompt+c.response || boundary != len(c.prompt) {
			t.Errorf("%s: Render = %q (boundary %d), want %q + %q", c.format, text, boundary, c.prompt, c.response)
		}
		if f.BOS != c.bos || f.EndOfTurn != c.eot || f.AddEOS {
			t.Errorf("%s: bos %q, end_of_turn %q, add_eos %v", c.format, f.BOS, f.EndOfTurn, f.AddEOS)
		}
		// An input (retrieved context) goes before the instruction in the user turn, as in gemma.
		withInput := f.RenderPrompt("Q?", "ctx")
		if want := strings.Replace(c.prompt, "What is 2+2?", "ctx\n\nQ?", 1); withInput != want {
			t.Errorf("%s: RenderPrompt with input = %q, want %q", c.format, withInput, want)
		}
		// The evaluation chat template has no BOS (the encoder adds it by the model's rule).
		if ct := f.ChatTemplate(); ct != strings.Replace(strings.TrimPrefix(c.prompt, c.bos), "What is 2+2?", "{prompt}", 1) {
			t.Errorf("%s: ChatTemplate = %q", c.format, ct)
		}
	}
	if g := mustFormat(t, "gemma"); g.ChatTemplate() != "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n" {
		t.Errorf("gemma ChatTemplate = %q", g.ChatTemplate())
	}
}

// Llama 3's <|begin_of_text|> becomes the BOS id, and its turn ends with <|eot_id|> (no EOS).
func TestEncodeLlama3(t *testing.T) {
	tok := trainedTokenizer(t, []string{"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"})
	if tok.Special().BOS != 0 {
		t.Fatalf("BOS = %d, want <|begin_of_text|> (0)", tok.Special().BOS)
	}
	f := mustFormat(t, "llama3")
	ex := Example{Instruction: "What is the answer?", Response: "42"}
	enc, err := f.Encode(tok, ex)
	if err != nil {
		t.Fatal(err)
	}
	text, boundary := f.Render(ex)
	if enc.IDs[0] != 0 || tok.Decode(enc.IDs) != text || tok.Decode(enc.IDs[:enc.PromptLen]) != text[:boundary] {
		t.Errorf("ids %q decode to %q, want BOS first and %q", tok.Pieces(enc.IDs), tok.Decode(enc.IDs), text)
	}
	if last := enc.IDs[len(enc.IDs)-1]; last != 4 {
		t.Errorf("llama3 example should end with <|eot_id|>: %q", tok.Pieces(enc.IDs))
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
	if !slices.Equal(Names(), []string{"alpaca", "chatml", "gemma", "llama3", "plain", "qwen2.5", "qwen3"}) {
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
		"badbos.json":     `{"x": {"prompt": "<s>{instruction}", "prompt_with_input": "{instruction}{input}", "response": "{response}", "bos": "<s>"}}`,
		"badeot.json":     `{"x": {"prompt": "{instruction}", "prompt_with_input": "{instruction}{input}", "response": "{response}", "end_of_turn": "</s>"}}`,
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

// Detect names the format from a checkpoint's chat_template (abridged from the published
// tokenizer_config.json files), the most specific match winning, and refuses what it cannot name.
func TestDetect(t *testing.T) {
	for _, c := range []struct {
		name string
		tpl  any
		want string // "" = an error
	}{
		{"gemma-2b-it", "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}", "gemma"},
		{"Llama-3", "{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}", "llama3"},
		{"Qwen2.5-Instruct", "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}", "qwen2.5"},
		{"Qwen3", "{{- '<|im_start|>' + message.role + '\\n' + content }}{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}", "qwen3"},
		{"SmolLM2-Instruct (ChatML)", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}", "chatml"},
		{"named templates", []map[string]string{{"name": "tool_use", "template": "x"}, {"name": "default", "template": "<start_of_turn>user"}}, "gemma"},
		{"base model", nil, ""},
		{"unknown template", "[INST] {{ message['content'] }} [/INST]", ""},
		{"not a template", 42, ""},
	} {
		dir := t.TempDir()
		cfg := map[string]any{"bos_token": "<bos>"}
		if c.tpl != nil {
			cfg["chat_template"] = c.tpl
		}
		data, _ := json.Marshal(cfg)
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := Detect(dir)
		switch {
		case c.want == "" && (err == nil || !strings.Contains(err.Error(), "tokenizer_config.json")):
			t.Errorf("%s: got %q, %v; want an error naming tokenizer_config.json", c.name, got, err)
		case c.want != "" && (err != nil || got != c.want):
			t.Errorf("%s: got %q, %v; want %s", c.name, got, err, c.want)
		}
	}
	if _, err := Detect(t.TempDir()); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("a folder without tokenizer_config.json: %v", err)
	}
}
