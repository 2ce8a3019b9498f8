package harness

import (
	"fmt"

	"github.com/perpetual-ml/perpetual/evaluation"
	_ "github.com/perpetual-ml/perpetual/models/gemma" // registers the gemma family for lm.Load
	"github.com/perpetual-ml/perpetual/models/lm"
	_ "github.com/perpetual-ml/perpetual/models/mamba" // registers the mamba family for lm.Load
	"github.com/perpetual-ml/perpetual/models/tokenizer"
	"github.com/perpetual-ml/perpetual/rag"
)

// LoadForEval loads a model folder's weights (in opts' dtype, float32 by default) and tokenizer and
// the encoder evaluation needs (lm-evaluation-harness's BOS rule for the family, the prefix
// token, the model window).
func LoadForEval(dir string, opts lm.LoadOptions) (*lm.Model, evaluation.Encoder, error) {
	m, err := lm.Load(dir, opts)
	if err != nil {
		return nil, evaluation.Encoder{}, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, evaluation.Encoder{}, err
	}
	addBOS, err := evaluation.AddBOSFor(dir, m.Arch().Family())
	if err != nil {
		return nil, evaluation.Encoder{}, err
	}
	sp := tok.Special()
	prefix := sp.BOS // the harness's prefix token for an empty context: BOS, else EOS
	if prefix < 0 {
		prefix = sp.EOS
	}
	if addBOS && sp.BOS < 0 {
		return nil, evaluation.Encoder{}, fmt.Errorf("%s: the model needs BOS but the tokenizer defines none", dir)
	}
	if prefix < 0 {
		return nil, evaluation.Encoder{}, fmt.Errorf("%s: the tokenizer defines neither BOS nor EOS", dir)
	}
	return m, evaluation.Encoder{Tokenizer: tok, AddBOS: addBOS, BOS: prefix, MaxLength: m.Arch().MaxLength()}, nil
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
