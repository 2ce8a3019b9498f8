package evaluation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAddBOSFor(t *testing.T) {
	dir := t.TempDir()
	check := func(family string, want bool) {
		t.Helper()
		got, err := AddBOSFor(dir, family)
		if err != nil || got != want {
			t.Errorf("%s: got %v %v, want %v", family, got, err, want)
		}
	}
	check("gemma", true)
	check("gemma2", true) // HFLM: "gemma" in model_type
	check("gemma3_text", true)
	check("llama", false)
	check("mamba", false) // no tokenizer_config.json
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"add_bos_token": true, "bos_token": "<s>"}`), 0o644)
	check("mamba", true)
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"add_bos_token": false}`), 0o644)
	check("mamba", false)
	check("gemma", true)
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"add_bos_token": "yes"`), 0o644)
	if _, err := AddBOSFor(dir, "mamba"); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("corrupt config: %v", err)
	}
}
