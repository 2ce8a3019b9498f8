// Package bert is a BGE-style BERT sentence encoder in GoMLX: Hugging Face BertModel (word +
// position + token-type embeddings, LayerNorm, post-LN encoder layers with an exact erf GELU MLP)
// with CLS pooling of the last hidden state and L2 normalisation, as BAAI/bge-*-en-v1.5 are
// used for retrieval. It loads a Hugging Face folder: config.json, model.safetensors and the
// WordPiece vocabulary (vocab.txt, or tokenizer.json with a WordPiece model).
//
// The WordPiece BertTokenizer is implemented here (models/tokenizer covers the decoder models'
// BPE/SentencePiece vocabularies, not WordPiece). Safetensors are read by a small reader in this
// package (F32/F16/BF16, single or sharded files) because the project's models/safetensors was
// not yet committed when this package was written; switching is a one-file change (weights.go).
package bert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Config is the subset of a BERT config.json the encoder uses.
type Config struct {
	ModelType             string  `json:"model_type"`
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	IntermediateSize      int     `json:"intermediate_size"`
	HiddenAct             string  `json:"hidden_act"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	TypeVocabSize         int     `json:"type_vocab_size"`
	LayerNormEps          float64 `json:"layer_norm_eps"`
	PadTokenID            int     `json:"pad_token_id"`
	PositionEmbeddingType string  `json:"position_embedding_type"`
}

// ReadConfig reads and validates dir/config.json.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("bert: %w", err)
	}
	var c Config
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&c); err != nil {
		return Config{}, fmt.Errorf("bert: %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("bert: %s: %w", path, err)
	}
	return c, nil
}

// Validate checks the fields the encoder needs and fills defaults (layer_norm_eps 1e-12,
// type_vocab_size 2, hidden_act gelu) where Hugging Face has them.
func (c *Config) Validate() error {
	switch c.ModelType {
	case "bert", "":
	default:
		return fmt.Errorf("model_type %q is not bert", c.ModelType)
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "gelu"
	}
	if c.HiddenAct != "gelu" {
		return fmt.Errorf("hidden_act %q not supported (want gelu, the exact erf form)", c.HiddenAct)
	}
	if c.PositionEmbeddingType != "" && c.PositionEmbeddingType != "absolute" {
		return fmt.Errorf("position_embedding_type %q not supported (want absolute)", c.PositionEmbeddingType)
	}
	if c.LayerNormEps == 0 {
		c.LayerNormEps = 1e-12
	}
	if c.TypeVocabSize == 0 {
		c.TypeVocabSize = 2
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads}, {"intermediate_size", c.IntermediateSize},
		{"max_position_embeddings", c.MaxPositionEmbeddings}} {
		if f.v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", f.name, f.v)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	return nil
}
