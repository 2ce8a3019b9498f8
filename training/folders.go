package training

import (
	"fmt"

	"github.com/perpetual-ml/perpetual/curriculum"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/prompt"
	"github.com/perpetual-ml/perpetual/models/tokenizer"
)

// RunFolders loads a Hugging Face model folder (float32) with its tokenizer and a curriculum
// folder, and trains with o (o.Out receives the model). promptFormat names the models/prompt
// format of flashcards ("" = Alpaca) unless o.Template is set. The options are validated before
// anything is loaded.
func RunFolders(modelDir, curriculumDir, promptFormat string, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Template == nil && promptFormat != "" {
		t, err := prompt.Format(promptFormat)
		if err != nil {
			return nil, err
		}
		o.Template = &t
	}
	cur, err := curriculum.Read(curriculumDir)
	if err != nil {
		return nil, err
	}
	if len(cur.Train) == 0 {
		return nil, fmt.Errorf("curriculum %s: train split is empty", curriculumDir)
	}
	tok, err := tokenizer.Load(modelDir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", modelDir, err)
	}
	m, err := lm.Load(modelDir, lm.LoadOptions{})
	if err != nil {
		return nil, err
	}
	return Run(m, tok, cur, o)
}
