package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// AddBOSToken returns tokenizer_config.json's add_bos_token in the model folder dir: its value
// and whether the file sets it. A missing file sets nothing; a corrupt one is an error naming it.
func AddBOSToken(dir string) (value, set bool, err error) {
	path := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("tokenizer: reading %s: %w", path, err)
	}
	var cfg struct {
		AddBOS *bool `json:"add_bos_token"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return false, false, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	if cfg.AddBOS == nil {
		return false, false, nil
	}
	return *cfg.AddBOS, true, nil
}

// AddsBOS reports whether Transformers' tokenizer of the model folder dir puts BOS before the
// texts it encodes (tokenizer(text), what fine-tuning scripts call): tokenizer_config.json's
// add_bos_token when it is set (Gemma's and Llama 2's say true, GPT-NeoX's false), otherwise
// whether tokenizer.json's post-processor template starts with the BOS token (Llama 3 sets no
// add_bos_token; its TemplateProcessing writes <|begin_of_text|> first). Without either file,
// no. The family of the model plays no part.
func AddsBOS(dir string) (bool, error) {
	if value, set, err := AddBOSToken(dir); err != nil || set {
		return value, err
	}
	path := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("tokenizer: reading %s: %w", path, err)
	}
	var file struct {
		PostProcessor *postProcessor `json:"post_processor"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		return false, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	first := file.PostProcessor.firstSpecialToken()
	if first == "" {
		return false, nil
	}
	names, err := readSpecialNames(dir)
	if err != nil {
		return false, err
	}
	return first == names.bos, nil
}

// postProcessor is the part of tokenizer.json's post_processor that says what comes before a
// single text: a TemplateProcessing, possibly inside a Sequence of processors.
type postProcessor struct {
	Type       string          `json:"type"`
	Processors []postProcessor `json:"processors"`
	Single     []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
	} `json:"single"`
}

// firstSpecialToken is the special token a single text's template starts with ("" if none).
func (p *postProcessor) firstSpecialToken() string {
	if p == nil {
		return ""
	}
	switch p.Type {
	case "TemplateProcessing":
		if len(p.Single) > 0 && p.Single[0].SpecialToken != nil {
			return p.Single[0].SpecialToken.ID
		}
	case "Sequence":
		for i := range p.Processors {
			if s := p.Processors[i].firstSpecialToken(); s != "" {
				return s
			}
		}
	}
	return ""
}
