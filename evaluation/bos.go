package evaluation

import (
	"strings"

	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// AddBOSFor decides whether requests start with BOS, as lm-evaluation-harness's HFLM does:
// always when the model_type contains "gemma" (gemma, gemma2, gemma3_text: the harness forces
// add_bos_token for the Gemma family, which degrades without BOS), otherwise what the model
// folder's tokenizer_config.json says in add_bos_token (false when the file or the field is
// absent, the Hugging Face default for GPT-NeoX-style tokenizers as Mamba's).
func AddBOSFor(modelDir, family string) (bool, error) {
	if strings.Contains(family, "gemma") {
		return true, nil
	}
	value, _, err := tokenizer.AddBOSToken(modelDir)
	return value, err
}
