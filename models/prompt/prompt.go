// Package prompt renders instructions into the prompt formats models were tuned with: the Alpaca
// template the paper used, the chat turns of Gemma, Llama 3 and Qwen (ChatML), and a plain format. The formats are data
// (formats.json, embedded), rendered by one small placeholder function; a training example is
// rendered and encoded with the index where the response starts, so training can mask the prompt.
package prompt

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

//go:embed formats.json
var formatsJSON []byte

// Template is one prompt format. Placeholders are {instruction}, {input} and {response}.
type Template struct {
	Name        string `json:"-"`
	Description string `json:"description"`
	// Prompt is the text before the response, for an instruction alone.
	Prompt string `json:"prompt"`
	// PromptWithInput is the prompt when the example carries an input (context).
	PromptWithInput string `json:"prompt_with_input"`
	// Response wraps the response (e.g. closing the model's turn).
	Response string `json:"response"`
	// AddEOS asks for the tokenizer's EOS id after the response of a training example.
	AddEOS bool `json:"add_eos"`
	// BOS is the beginning-of-sequence piece the prompts start with ("<bos>", "<|begin_of_text|>"),
	// if any: ChatTemplate drops it, since the evaluation's encoder adds BOS by the model's rule.
	BOS string `json:"bos,omitempty"`
	// EndOfTurn is the piece that closes the model's turn ("<end_of_turn>", "<|eot_id|>",
	// "<|im_end|>"), if any: generation stops there as at EOS.
	EndOfTurn string `json:"end_of_turn,omitempty"`
	// Detect lists pieces that, all present in a checkpoint's chat_template
	// (tokenizer_config.json), identify this format (see Detect).
	Detect []string `json:"detect,omitempty"`
}

// Example is one instruction, its optional input (context) and the response.
type Example struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input,omitempty"`
	Response    string `json:"response"`
}

var builtin = func() map[string]Template {
	m, err := Parse(formatsJSON, "formats.json")
	if err != nil {
		panic(err) // the embedded file is tested; a broken one is a build defect
	}
	return m
}()

// Format returns the built-in format called name (see Names: "alpaca", "gemma", "llama3",
// "chatml", "qwen2.5", "qwen3", "plain").
func Format(name string) (Template, error) {
	t, ok := builtin[name]
	if !ok {
		return Template{}, fmt.Errorf("prompt: unknown format %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return t, nil
}

// Detect names the built-in format of the checkpoint in dir from the chat_template of its
// tokenizer_config.json: the format whose Detect pieces all occur in it, the one with the most
// pieces when several do (qwen2.5 over chatml). A checkpoint without a chat template, or with one
// no format matches (or two match equally), is an error that names the file: give the format.
func Detect(dir string) (string, error) {
	file := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("prompt: cannot detect the chat format: %w (give the prompt format by name)", err)
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("prompt: %s: %v", file, err)
	}
	tpl, err := chatTemplateText(cfg.ChatTemplate)
	if err != nil {
		return "", fmt.Errorf("prompt: %s: chat_template: %v", file, err)
	}
	if tpl == "" {
		return "", fmt.Errorf("prompt: %s has no chat_template (a base model?): give the prompt format by name (%s)", file, strings.Join(Names(), ", "))
	}
	best, bestN, tie := "", 0, false
	for _, name := range Names() {
		pieces := builtin[name].Detect
		if len(pieces) == 0 {
			continue
		}
		all := true
		for _, p := range pieces {
			all = all && strings.Contains(tpl, p)
		}
		switch {
		case !all:
		case len(pieces) > bestN:
			best, bestN, tie = name, len(pieces), false
		case len(pieces) == bestN:
			tie = true
		}
	}
	if best == "" || tie {
		return "", fmt.Errorf("prompt: %s: its chat_template matches none (or more than one) of the known formats (%s): give the prompt format by name", file, strings.Join(Names(), ", "))
	}
	return best, nil
}

// chatTemplateText is a tokenizer_config.json chat_template: a string, or a list of named
// templates of which "default" (else the first) is the chat template.
func chatTemplateText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct{ Name, Template string }
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("neither a string nor a list of {name, template}")
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	if len(named) > 0 {
		return named[0].Template, nil
	}
	return "", nil
}

// Names lists the built-in formats, sorted.
func Names() []string {
	names := make([]string, 0, len(builtin))
	for n := range builtin {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LoadFile reads formats from a JSON file shaped like the embedded formats.json.
func LoadFile(path string) (map[string]Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	return Parse(data, path)
}

// Parse reads formats from JSON; file names the source in errors.
func Parse(data []byte, file string) (map[string]Template, error) {
	var m map[string]Template
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("prompt: %s: %v", file, err)
	}
	for name, t := range m {
		t.Name = name
		if err := t.check(); err != nil {
			return nil, fmt.Errorf("prompt: %s: format %q: %v", file, name, err)
		}
		m[name] = t
	}
	return m, nil
}

func (t Template) check() error {
	for _, c := range []struct {
		field, text string
		want        []string
		allowed     []string
	}{
		{"prompt", t.Prompt, []string{"instruction"}, []string{"instruction"}},
		{"prompt_with_input", t.PromptWithInput, []string{"instruction", "input"}, []string{"instruction", "input"}},
		{"response", t.Response, []string{"response"}, []string{"response"}},
	} {
		names, err := placeholders(c.text)
		if err != nil {
			return fmt.Errorf("%s: %v", c.field, err)
		}
		for _, w := range c.want {
			if names[w] != 1 {
				return fmt.Errorf("%s must contain {%s} exactly once", c.field, w)
			}
		}
		for n := range names {
			if !contains(c.allowed, n) {
				return fmt.Errorf("%s: unknown placeholder {%s}", c.field, n)
			}
		}
	}
	if t.BOS != "" && (!strings.HasPrefix(t.Prompt, t.BOS) || !strings.HasPrefix(t.PromptWithInput, t.BOS)) {
		return fmt.Errorf("bos %q must start prompt and prompt_with_input", t.BOS)
	}
	if t.EndOfTurn != "" && !strings.Contains(t.Response, t.EndOfTurn) {
		return fmt.Errorf("end_of_turn %q must close the response", t.EndOfTurn)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// placeholders counts the {name} placeholders of a template.
func placeholders(tmpl string) (map[string]int, error) {
	names := map[string]int{}
	for rest := tmpl; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return names, nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unclosed {")
		}
		names[rest[i+1:i+j]]++
		rest = rest[i+j+1:]
	}
}

// render substitutes {name} placeholders in one pass: substituted values are never rescanned,
// so user text containing "{response}" stays as it is.
func render(tmpl string, values map[string]string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		name := tmpl[i+1 : i+j]
		if v, ok := values[name]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(tmpl[i : i+j+1])
		}
		tmpl = tmpl[i+j+1:]
	}
}

// RenderPrompt returns the text up to where the response starts. A non-empty input selects
// PromptWithInput.
func (t Template) RenderPrompt(instruction, input string) string {
	if input != "" {
		return render(t.PromptWithInput, map[string]string{"instruction": instruction, "input": input})
	}
	return render(t.Prompt, map[string]string{"instruction": instruction})
}

// ChatTemplate is the format's prompt as an evaluation chat template: {instruction} becomes
// {prompt} (the whole evaluation prompt, retrieved passages included) and the leading BOS piece
// is dropped, since the evaluation's encoder adds BOS by the model's own rule.
func (t Template) ChatTemplate() string {
	p := t.Prompt
	if t.BOS != "" {
		p = strings.TrimPrefix(p, t.BOS)
	}
	return strings.Replace(p, "{instruction}", "{prompt}", 1)
}

// RenderResponse returns the response as the format writes it after the prompt.
func (t Template) RenderResponse(response string) string {
	return render(t.Response, map[string]string{"response": response})
}

// Render returns the full text of a training example and the byte index where the response
// starts (text[:boundary] is the prompt).
func (t Template) Render(ex Example) (text string, boundary int) {
	p := t.RenderPrompt(ex.Instruction, ex.Input)
	return p + t.RenderResponse(ex.Response), len(p)
}

// Encoded is a tokenized training example.
type Encoded struct {
	// IDs are the prompt ids followed by the response ids (and EOS when the format asks).
	IDs []int32
	// PromptLen is the number of prompt ids: IDs[:PromptLen] is masked out of the loss.
	PromptLen int
}

// Encode tokenizes ex: the prompt and the response are encoded separately, so the boundary is
// exact. A leading BOS piece written in the template (Gemma's "<bos>") becomes the BOS id even
// with tokenizers that do not match control tokens in text (SentencePiece). The tokenizer's EOS
// id ends the example when the format asks for it.
func (t Template) Encode(tok tokenizer.Tokenizer, ex Example) (Encoded, error) {
	special := tok.Special()
	prompt := t.RenderPrompt(ex.Instruction, ex.Input)
	var ids []int32
	if special.BOS >= 0 {
		if piece := tok.Pieces([]int32{special.BOS})[0]; piece != "" && strings.HasPrefix(prompt, piece) {
			ids = append(ids, special.BOS)
			prompt = prompt[len(piece):]
		}
	}
	ids = append(ids, tok.Encode(prompt)...)
	n := len(ids)
	ids = append(ids, tok.Encode(t.RenderResponse(ex.Response))...)
	if t.AddEOS {
		if special.EOS < 0 {
			return Encoded{}, fmt.Errorf("prompt: format %q ends examples with EOS but the tokenizer has none", t.Name)
		}
		ids = append(ids, special.EOS)
	}
	return Encoded{IDs: ids, PromptLen: n}, nil
}
