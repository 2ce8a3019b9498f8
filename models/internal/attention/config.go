package attention

import (
	"fmt"
	"math"
)

// Sizes are the config.json numbers every transformer family's graphs rely on, with Hugging
// Face's names. A family's Config.Validate fills one from its config and checks it first, then
// what is its own (activations, biases, soft caps, RoPE scaling, ...).
type Sizes struct {
	VocabSize, HiddenSize, IntermediateSize, NumHiddenLayers            int
	NumAttentionHeads, NumKeyValueHeads, HeadDim, MaxPositionEmbeddings int
	RMSNormEps, RopeTheta                                               float64
}

// DecoderFLOPs is the arithmetic of a decoder's Logits on one row of T tokens, a multiply-add
// counting 2, for the families whose layers are attention (q, k, v, o projections) and a gated
// MLP (gate, up, down) and whose head is a vocab_size x hidden_size product: per token and layer
// q 2·d·(H·D), k and v 2·2·d·(KV·D), o 2·(H·D)·d and the MLP 3·2·d·I; per layer the attention
// scores and weighted values 2·2·H·D·T² (every query-key pair: the graphs mask rather than skip,
// sliding layers included); the head 2·d·V per token. Norms, biases, rotary embeddings, soft caps
// and activations (a few operations per activation) are left out.
func (s Sizes) DecoderFLOPs(T int) float64 {
	d, hd, kvd := float64(s.HiddenSize), float64(s.NumAttentionHeads*s.HeadDim), float64(s.NumKeyValueHeads*s.HeadDim)
	t := float64(T)
	perToken := 2*d*hd + 2*2*d*kvd + 2*hd*d + 3*2*d*float64(s.IntermediateSize)
	scores := 2 * 2 * hd * t * t
	return float64(s.NumHiddenLayers)*(t*perToken+scores) + t*2*d*float64(s.VocabSize)
}

// Limits bound what the sizes may imply, so that a corrupt or hostile config.json fails
// validation instead of exhausting memory in Specs.
type Limits struct {
	// MaxParams and MaxLayers are the most parameters and layers accepted.
	MaxParams float64
	MaxLayers int
	// VocabMatrices is how many vocab_size x hidden_size matrices the parameter estimate counts:
	// 1 for an embedding that is also the head, 2 to count a separate head.
	VocabMatrices int
}

// Check returns an error naming the first config.json field that is wrong, without the
// config's prefix (the family adds "<model_type> config.json: "), or nil. In order: every size
// is a positive integer; the sizes imply at most l.MaxParams parameters in at most l.MaxLayers
// layers; num_attention_heads is a multiple of num_key_value_heads (grouped-query attention);
// head_dim is even (rotary embeddings); rms_norm_eps is a positive number and rope_theta a
// number > 1.
func (s Sizes) Check(l Limits) error {
	positive := []struct {
		name  string
		value int
	}{
		{"vocab_size", s.VocabSize}, {"hidden_size", s.HiddenSize},
		{"intermediate_size", s.IntermediateSize}, {"num_hidden_layers", s.NumHiddenLayers},
		{"num_attention_heads", s.NumAttentionHeads}, {"num_key_value_heads", s.NumKeyValueHeads},
		{"head_dim", s.HeadDim}, {"max_position_embeddings", s.MaxPositionEmbeddings},
	}
	for _, f := range positive {
		if f.value <= 0 {
			return fmt.Errorf("%s must be a positive integer, got %d", f.name, f.value)
		}
	}
	h, layers := float64(s.HiddenSize), float64(s.NumHiddenLayers)
	heads := float64(s.NumAttentionHeads) + float64(s.NumKeyValueHeads)
	perLayer := 2*h*heads*float64(s.HeadDim) + 3*h*float64(s.IntermediateSize)
	if n := float64(l.VocabMatrices)*float64(s.VocabSize)*h + layers*perLayer; n > l.MaxParams || layers > float64(l.MaxLayers) {
		return fmt.Errorf("sizes imply %.3g parameters in %d layers (num_hidden_layers, hidden_size, intermediate_size, "+
			"vocab_size); refusing more than %.0g parameters or %d layers", n, s.NumHiddenLayers, l.MaxParams, l.MaxLayers)
	}
	if s.NumAttentionHeads%s.NumKeyValueHeads != 0 {
		return fmt.Errorf("num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)", s.NumAttentionHeads, s.NumKeyValueHeads)
	}
	if s.HeadDim%2 != 0 {
		return fmt.Errorf("head_dim must be even for rotary embeddings, got %d", s.HeadDim)
	}
	if !(s.RMSNormEps > 0) || math.IsInf(s.RMSNormEps, 0) {
		return fmt.Errorf("rms_norm_eps must be a positive number, got %g", s.RMSNormEps)
	}
	if !(s.RopeTheta > 1) || math.IsInf(s.RopeTheta, 0) {
		return fmt.Errorf("rope_theta must be a number > 1, got %g", s.RopeTheta)
	}
	return nil
}
