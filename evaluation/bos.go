package evaluation

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// AddBOSFor decides whether requests start with BOS, as lm-evaluation-harness's HFLM does:
// always for Gemma (the harness forces add_bos_token for it, and Gemma degrades without BOS),
// otherwise what the model folder's tokenizer_config.json says in add_bos_token (false when the
// file or the field is absent, the Hugging Face default for GPT-NeoX-style tokenizers as Mamba's).
func AddBOSFor(modelDir, family string) (bool, error) {
	if family == "gemma" {
		return true, nil
	}
	path := filepath.Join(modelDir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	var cfg struct {
		AddBOS *bool `json:"add_bos_token"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return cfg.AddBOS != nil && *cfg.AddBOS, nil
}
