package tokenizer

import (
	"strings"
	"testing"
)

// Whether a tokenizer adds BOS follows its files, as Transformers' tokenizer(text) does:
// tokenizer_config.json's add_bos_token when set, else a post-processor template that starts
// with the BOS token (Llama 3's, inside a Sequence after ByteLevel).
func TestAddsBOS(t *testing.T) {
	const llama3Post = `{"post_processor": {"type": "Sequence", "processors": [
		{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
			{"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {}}]}}`
	const bertPost = `{"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
		{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}]}}`
	cases := []struct {
		name, config, tokenizerJSON string
		want                        bool
	}{
		{"no files", "", "", false},
		{"add_bos_token true (Gemma)", `{"add_bos_token": true, "bos_token": "<bos>"}`, "", true},
		{"add_bos_token false wins over the template", `{"add_bos_token": false, "bos_token": "<|begin_of_text|>"}`, llama3Post, false},
		{"template starting with BOS (Llama 3)", `{"bos_token": "<|begin_of_text|>"}`, llama3Post, true},
		{"template starting with another token", `{"bos_token": "<s>"}`, bertPost, false},
		{"ByteLevel post-processor only (Qwen)", `{"bos_token": null}`, `{"post_processor": {"type": "ByteLevel"}}`, false},
		{"no post-processor", `{"bos_token": "<s>"}`, `{"post_processor": null}`, false},
	}
	for _, c := range cases {
		dir := t.TempDir()
		if c.config != "" {
			writeFile(t, dir, "tokenizer_config.json", c.config)
		}
		if c.tokenizerJSON != "" {
			writeFile(t, dir, "tokenizer.json", c.tokenizerJSON)
		}
		got, err := AddsBOS(dir)
		if err != nil || got != c.want {
			t.Errorf("%s: AddsBOS = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	dir := t.TempDir()
	writeFile(t, dir, "tokenizer_config.json", `{"add_bos_token": "yes"}`)
	if _, err := AddsBOS(dir); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("corrupt tokenizer_config.json: %v", err)
	}
	if value, set, err := AddBOSToken(dir + "/missing"); value || set || err != nil {
		t.Errorf("missing folder: %v %v %v", value, set, err)
	}
}
