package harness

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/perpetual-ml/perpetual/evaluation"
	"github.com/perpetual-ml/perpetual/models/checkpoint"
	_ "github.com/perpetual-ml/perpetual/models/gemma" // registers gemma, gemma2 and gemma3_text for lm.Load
	_ "github.com/perpetual-ml/perpetual/models/llama" // registers llama, qwen2 and qwen3 for lm.Load
	"github.com/perpetual-ml/perpetual/models/lm"
	_ "github.com/perpetual-ml/perpetual/models/mamba" // registers the mamba family for lm.Load
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/rag"
)

// LoadForEval loads a model folder's weights (in opts' dtype, float32 by default) and tokenizer and
// the encoder evaluation needs: lm-evaluation-harness's BOS rule for the family, its window (the
// model's; for a model without one, such as Mamba, tokenizer_config.json's model_max_length or
// 2048), each replaced by eo's max_length and add_bos_token when set, and the prefix token.
func LoadForEval(dir string, opts lm.LoadOptions, eo evaluation.EncodingOptions) (*lm.Model, evaluation.Encoder, error) {
	m, err := lm.Load(dir, opts)
	if err != nil {
		return nil, evaluation.Encoder{}, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, evaluation.Encoder{}, err
	}
	resolved := m.Dir()
	if resolved == "" {
		resolved = dir
	}
	e, err := eo.Resolve(resolved, m.Arch().Family(), m.Arch().MaxLength())
	if err != nil {
		return nil, evaluation.Encoder{}, fmt.Errorf("%s: %w", dir, err)
	}
	sp := tok.Special()
	prefix := sp.BOS // the harness's prefix token for an empty context: BOS, else EOS
	if prefix < 0 {
		prefix = sp.EOS
	}
	if e.AddBOS && sp.BOS < 0 {
		return nil, evaluation.Encoder{}, fmt.Errorf("%s: the model needs BOS but the tokenizer defines none", dir)
	}
	if prefix < 0 {
		return nil, evaluation.Encoder{}, fmt.Errorf("%s: the tokenizer defines neither BOS nor EOS", dir)
	}
	return m, evaluation.Encoder{Tokenizer: tok, AddBOS: e.AddBOS, BOS: prefix, MaxLength: e.MaxLength, MaxLengthSource: e.MaxLengthSource}, nil
}

// GenerationFor is the recall formulation's greedy decoding for a model loaded by LoadForEval: the
// model generates, its tokenizer (enc.Tokenizer) decodes, and the tokenizer's EOS ends an answer
// (Gemma's end of turn is an until string of the task).
func GenerationFor(m *lm.Model, enc evaluation.Encoder) (*evaluation.Generation, error) {
	tok, ok := enc.Tokenizer.(tokenizer.Tokenizer)
	if !ok {
		return nil, fmt.Errorf("recall: the encoder's tokenizer (%T) cannot decode answers: load the model with LoadForEval", enc.Tokenizer)
	}
	eos := tok.Special().EOS
	if eos < 0 {
		return nil, fmt.Errorf("%s: the tokenizer defines no EOS, so a recall answer could only end at max_gen_toks or an until string; name the EOS token in tokenizer_config.json (eos_token)", m.Dir())
	}
	return &evaluation.Generation{Generator: m, Decoder: tok, StopTokens: []int32{eos}}, nil
}

// evalEncoding resolves, from config.json and tokenizer_config.json alone (no weights), the
// window and BOS setting LoadForEval will use for dir, and reports whether they differ from what
// the harness used before issue 16: the architecture's window (none for Mamba) and the family's
// BOS rule. Cells keyed before then stay valid exactly when they do not differ.
func evalEncoding(dir string, eo evaluation.EncodingOptions) (evaluation.Encoding, bool, error) {
	resolved, err := checkpoint.Resolve(dir)
	if err != nil {
		return evaluation.Encoding{}, false, err
	}
	cfg, err := os.ReadFile(filepath.Join(resolved, checkpoint.ConfigFile))
	if err != nil {
		return evaluation.Encoding{}, false, err
	}
	arch, err := lm.NewArchitecture(cfg)
	if err != nil {
		return evaluation.Encoding{}, false, fmt.Errorf("%s: %w", resolved, err)
	}
	e, err := eo.Resolve(resolved, arch.Family(), arch.MaxLength())
	if err != nil {
		return evaluation.Encoding{}, false, fmt.Errorf("%s: %w", dir, err)
	}
	oldBOS, err := evaluation.AddBOSFor(resolved, arch.Family())
	if err != nil {
		return evaluation.Encoding{}, false, err
	}
	return e, e.MaxLength != arch.MaxLength() || e.AddBOS != oldBOS, nil
}

// Retriever adapts a rag index to evaluation's Retriever (rag does not import evaluation, so
// that dependencies point one way).
func Retriever(r rag.Retriever) evaluation.Retriever { return ragRetriever{r} }

type ragRetriever struct{ r rag.Retriever }

func (a ragRetriever) Retrieve(query string, k int) ([]evaluation.Passage, error) {
	hits, err := a.r.Retrieve(query, k)
	if err != nil {
		return nil, err
	}
	out := make([]evaluation.Passage, len(hits))
	for i, h := range hits {
		out[i] = evaluation.Passage{ID: h.ChunkID, Text: h.Text, Score: h.Score}
	}
	return out, nil
}
