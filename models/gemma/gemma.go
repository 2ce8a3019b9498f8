// Package gemma is the Gemma v1 architecture (Hugging Face GemmaForCausalLM, e.g.
// google/gemma-2b-it) written once in GoMLX and registered with models/lm as "gemma"; Gemma 2
// and Gemma 3 text ("gemma2", "gemma3_text") are Model2 in gemma2.go, which shares its graph
// pieces (layers.go). Attention, RoPE, the masks and the cache are models/internal/attention's.
//
// The computation follows the Hugging Face modeling_gemma code, so a checkpoint folder loads with
// its tensor names unchanged and produces the same logits:
//
//	h0 = embed[tokens] * sqrt(hidden)                    (normalizer cast to the hidden dtype)
//	for each layer:
//	  a  = RMSNorm(h) ; q,k,v = a Wq^T, a Wk^T, a Wv^T   (RMSNorm in float32, weight as 1 + w)
//	  q,k = RoPE(q,k) at each token's position            (rotate_half convention, rope_theta)
//	  h += o_proj(softmax(q k^T / sqrt(head_dim) + mask) v)  (GQA/MQA: head h uses kv head h/(H/KV))
//	  m  = RMSNorm(h) ; h += down(gelu_tanh(gate(m)) * up(m))
//	logits = float32(RMSNorm(h) embed^T)                  (tied head)
//
// The mask lets a token see earlier tokens of its own segment only, so several documents can be
// packed in one row and padding (segment 0) never leaks into real tokens.
//
// Every size comes from config.json: the tiny golden-test models and the 2b model run the same
// code. The package has no dependency beyond GoMLX, models/lm and models/internal/attention: a
// family file is graph code only; loading, batching and dtype policy live in models/lm.
package gemma

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.

	"github.com/perpetual-ml/perpetual/models/internal/attention"
	"github.com/perpetual-ml/perpetual/models/internal/customgrad"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// ModelType is the config.json "model_type" this package implements.
const ModelType = "gemma"

func init() {
	lm.Register(ModelType, func(raw json.RawMessage) (lm.Architecture, error) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			return nil, err
		}
		return New(cfg)
	})
}

// Config holds the config.json fields the architecture uses, with Hugging Face's names.
type Config struct {
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"`
	HeadDim               int     `json:"head_dim"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	RopeTheta             float64 `json:"rope_theta"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	// HiddenAct is Gemma 1's activation field; its "gelu" is run as the tanh approximation, as
	// Hugging Face's GemmaMLP does (the model was trained with it).
	HiddenAct string `json:"hidden_act"`
	// HiddenActivation, when set, takes precedence over HiddenAct (newer Hugging Face configs).
	HiddenActivation string `json:"hidden_activation"`

	// Fields that would change the computation in ways this implementation does not support; they
	// are read only to reject such configs instead of silently computing something else.
	AttentionBias     bool            `json:"attention_bias"`
	RopeScaling       json.RawMessage `json:"rope_scaling"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
}

// Defaults used when config.json omits a field that has a conventional value. Sizes have no
// default: a config without them is an error rather than a silently different model.
const (
	defaultRMSNormEps   = 1e-6
	defaultRopeTheta    = 10000.0
	defaultMaxPositions = 8192

	// Sanity limits far above any Gemma (7b has 8.5e9 parameters in 28 layers).
	maxParams = 1e12
	maxLayers = 10000
)

// ParseConfig reads and validates a Gemma config.json. Errors name the offending field.
func ParseConfig(raw json.RawMessage) (Config, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, fmt.Errorf("gemma config.json: %w", err)
	}
	// Transformers v5 writes the RoPE base as rope_parameters {"rope_type": "default",
	// "rope_theta": ...}; rope_theta may stand beside it when both say the same.
	var v5 struct {
		RopeParameters *struct {
			RopeType  string  `json:"rope_type"`
			RopeTheta float64 `json:"rope_theta"`
		} `json:"rope_parameters"`
	}
	if err := json.Unmarshal(raw, &v5); err != nil {
		return cfg, fmt.Errorf("gemma config.json: %w", err)
	}
	if p := v5.RopeParameters; p != nil {
		switch {
		case p.RopeType != "" && p.RopeType != "default":
			return cfg, fmt.Errorf("gemma config.json: rope_parameters.rope_type=%q is not supported (only plain RoPE: default)", p.RopeType)
		case cfg.RopeTheta != 0 && p.RopeTheta != 0 && cfg.RopeTheta != p.RopeTheta:
			return cfg, fmt.Errorf("gemma config.json: rope_theta=%g and rope_parameters.rope_theta=%g disagree; keep one",
				cfg.RopeTheta, p.RopeTheta)
		case p.RopeTheta != 0:
			cfg.RopeTheta = p.RopeTheta
		}
	}
	if cfg.NumKeyValueHeads == 0 {
		cfg.NumKeyValueHeads = cfg.NumAttentionHeads
	}
	if cfg.HeadDim == 0 && cfg.NumAttentionHeads > 0 && cfg.HiddenSize%cfg.NumAttentionHeads == 0 {
		cfg.HeadDim = cfg.HiddenSize / cfg.NumAttentionHeads
	}
	if cfg.RMSNormEps == 0 {
		cfg.RMSNormEps = defaultRMSNormEps
	}
	if cfg.RopeTheta == 0 {
		cfg.RopeTheta = defaultRopeTheta
	}
	if cfg.MaxPositionEmbeddings == 0 {
		cfg.MaxPositionEmbeddings = defaultMaxPositions
	}
	return cfg, cfg.Validate()
}

// sizes are the config's sizes as the shared attention code reads them.
func (c Config) sizes() attention.Sizes {
	return attention.Sizes{VocabSize: c.VocabSize, HiddenSize: c.HiddenSize, IntermediateSize: c.IntermediateSize,
		NumHiddenLayers: c.NumHiddenLayers, NumAttentionHeads: c.NumAttentionHeads, NumKeyValueHeads: c.NumKeyValueHeads,
		HeadDim: c.HeadDim, MaxPositionEmbeddings: c.MaxPositionEmbeddings, RMSNormEps: c.RMSNormEps, RopeTheta: c.RopeTheta}
}

// Validate checks every field the graphs rely on.
func (c Config) Validate() error {
	sizes := c.sizes()
	if err := sizes.Check(attention.Limits{MaxParams: maxParams, MaxLayers: maxLayers, VocabMatrices: 1}); err != nil {
		return fmt.Errorf("gemma config.json: %w", err)
	}
	if _, err := c.activation(); err != nil {
		return err
	}
	if c.AttentionBias {
		return fmt.Errorf("gemma config.json: attention_bias=true is not supported (Gemma v1 has no projection biases)")
	}
	if c.TieWordEmbeddings != nil && !*c.TieWordEmbeddings {
		return fmt.Errorf("gemma config.json: tie_word_embeddings=false is not supported (Gemma's head is the embedding)")
	}
	if s := string(c.RopeScaling); s != "" && s != "null" {
		return fmt.Errorf("gemma config.json: rope_scaling=%s is not supported (only plain RoPE)", s)
	}
	return nil
}

// activation returns the MLP activation config.json selects. Only GELU variants exist in Gemma v1.
func (c Config) activation() (string, error) {
	field, name := "hidden_activation", c.HiddenActivation
	if name == "" {
		field, name = "hidden_act", c.HiddenAct
	}
	switch name {
	case "", "gelu", "gelu_pytorch_tanh", "gelu_new", "gelu_fast":
		// Gemma 1 checkpoints say "gelu" but were trained with the tanh approximation; Hugging Face
		// runs them with gelu_pytorch_tanh, and so do we.
		return "gelu_tanh", nil
	}
	return "", fmt.Errorf("gemma config.json: %s=%q is not supported (want gelu or gelu_pytorch_tanh)", field, name)
}

// Model is the Gemma architecture for one config; it implements lm.Architecture.
type Model struct {
	cfg Config
	// train builds TrainingLogits' graph: linear layers with customgrad's gradients.
	train bool
}

var _ lm.Architecture = (*Model)(nil)

// New returns the architecture for a validated config.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Model{cfg: cfg}, nil
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Family implements lm.Architecture.
func (m *Model) Family() string { return ModelType }

// CodeVersion implements lm.Architecture. Change it with any change to this file's numerics.
func (m *Model) CodeVersion() string { return "1" }

// VocabSize implements lm.Architecture.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// MaxLength implements lm.Architecture: max_position_embeddings.
func (m *Model) MaxLength() int { return m.cfg.MaxPositionEmbeddings }

// Parameter names, exactly as in Hugging Face checkpoints.
const (
	embedName     = "model.embed_tokens.weight"
	finalNormName = "model.norm.weight"
	tiedHeadAlias = "lm_head.weight"
)

func layerName(layer int, suffix string) string {
	return fmt.Sprintf("model.layers.%d.%s", layer, suffix)
}

// Specs implements lm.Architecture. Shapes are PyTorch's: linear weights are [out, in].
func (m *Model) Specs() []lm.ParamSpec {
	c := m.cfg
	specs := []lm.ParamSpec{{Name: embedName, Shape: []int{c.VocabSize, c.HiddenSize}, Aliases: []string{tiedHeadAlias}}}
	for l := range c.NumHiddenLayers {
		specs = append(specs,
			lm.ParamSpec{Name: layerName(l, "input_layernorm.weight"), Shape: []int{c.HiddenSize}},
			lm.ParamSpec{Name: layerName(l, "self_attn.q_proj.weight"), Shape: []int{c.NumAttentionHeads * c.HeadDim, c.HiddenSize}},
			lm.ParamSpec{Name: layerName(l, "self_attn.k_proj.weight"), Shape: []int{c.NumKeyValueHeads * c.HeadDim, c.HiddenSize}},
			lm.ParamSpec{Name: layerName(l, "self_attn.v_proj.weight"), Shape: []int{c.NumKeyValueHeads * c.HeadDim, c.HiddenSize}},
			lm.ParamSpec{Name: layerName(l, "self_attn.o_proj.weight"), Shape: []int{c.HiddenSize, c.NumAttentionHeads * c.HeadDim}},
			lm.ParamSpec{Name: layerName(l, "post_attention_layernorm.weight"), Shape: []int{c.HiddenSize}},
			lm.ParamSpec{Name: layerName(l, "mlp.gate_proj.weight"), Shape: []int{c.IntermediateSize, c.HiddenSize}},
			lm.ParamSpec{Name: layerName(l, "mlp.up_proj.weight"), Shape: []int{c.IntermediateSize, c.HiddenSize}},
			lm.ParamSpec{Name: layerName(l, "mlp.down_proj.weight"), Shape: []int{c.HiddenSize, c.IntermediateSize}},
		)
	}
	return append(specs, lm.ParamSpec{Name: finalNormName, Shape: []int{c.HiddenSize}})
}

// NumParams is the number of parameters (the tied head counted once).
func (m *Model) NumParams() int {
	return lm.NumParams(m.Specs())
}

// LogitsFLOPs implements lm.FLOPCounter: the matrix products of Logits on one row of T tokens
// (attention.Sizes.DecoderFLOPs). With the tied head that is 2 x the parameters x T (the
// embedding read as the head, not as the lookup) plus the attention term.
func (m *Model) LogitsFLOPs(T int) float64 {
	return m.cfg.sizes().DecoderFLOPs(T)
}

var _ lm.FLOPCounter = (*Model)(nil)

// CacheShapes implements lm.Architecture: per layer, keys then values, each
// [1, num_key_value_heads, maxLength, head_dim].
func (m *Model) CacheShapes(maxLength int, dtype dtypes.DType) []lm.CacheShape {
	return attention.CacheShapes(m.cfg.NumHiddenLayers, m.cfg.NumKeyValueHeads, m.cfg.HeadDim, maxLength, dtype)
}

// Logits implements lm.Architecture: each token attends to the earlier tokens of its own segment.
func (m *Model) Logits(p lm.Params, tokens, positions, segments *Node) *Node {
	allowed := attention.PackedMask(positions, segments, 0)
	x := m.embed(p, tokens)
	cos, sin := m.rotary(positions, x.DType())
	for l := range m.cfg.NumHiddenLayers {
		x = m.block(p, l, x, cos, sin, allowed, attention.Uncached)
	}
	return m.head(p, x)
}

// Step implements lm.Architecture: the chunk's keys and values are written into the cache at
// start, and the chunk attends to cached positions < start+S (causally within the chunk).
// The caller must keep start+S <= the cache length (DynamicUpdateSlice would clamp otherwise).
func (m *Model) Step(p lm.Params, cache []*Node, tokens, start *Node) (*Node, []*Node) {
	S, maxLen := tokens.Shape().Dimensions[1], cache[0].Shape().Dimensions[2]
	allowed := attention.StepMask(start, S, maxLen, 0)
	x := m.embed(p, tokens)
	cos, sin := m.rotary(attention.StepPositions(start, S), x.DType())
	newCache := make([]*Node, len(cache))
	for l := range m.cfg.NumHiddenLayers {
		x = m.block(p, l, x, cos, sin, allowed, attention.CacheWriter(cache, newCache, l, start))
	}
	return m.head(p, x), newCache
}

// embed looks up token embeddings and scales them by sqrt(hidden_size).
func (m *Model) embed(p lm.Params, tokens *Node) *Node {
	return scaledEmbedding(p(embedName), tokens, m.cfg.HiddenSize)
}

// head applies the final norm and the tied output projection; logits are float32.
func (m *Model) head(p lm.Params, x *Node) *Node {
	x = m.rmsNorm(x, p(finalNormName))
	if m.train {
		return ConvertDType(customgrad.Linear(x, p(embedName)), dtypes.Float32)
	}
	return tiedHead(x, p(embedName), 0)
}

// TrainingLogits implements lm.TrainingLogits: Logits' values, with the linear layers'
// and the tied head's gradients written by hand (customgrad.Linear: the weight gradients
// transpose only the smaller operand, at the bench shapes about a quarter of the elements the
// generic gradient transposes). Training graphs only: its forward pass copies inputs that
// several nodes read.
func (m *Model) TrainingLogits(p lm.Params, tokens, positions, segments *Node) *Node {
	t := *m
	t.train = true
	return t.Logits(p, tokens, positions, segments)
}

// linear is the model's linear layer: customgrad's in TrainingLogits' graph.
func (m *Model) linear(x, w *Node) *Node {
	if m.train {
		return customgrad.Linear(x, w)
	}
	return linear(x, w)
}

// rmsNorm is Gemma's RMSNorm (see rmsNorm) with the config's epsilon.
func (m *Model) rmsNorm(x, w *Node) *Node { return rmsNorm(x, w, m.cfg.RMSNormEps) }

// rotary returns cos and sin [B, T, 1, head_dim] for the positions, in dtype. As in Hugging
// Face's GemmaRotaryEmbedding, inv_freq = theta^(-2i/d) is computed in float32 (in the graph,
// unlike Gemma 2/3 and Llama, which compute it on the host in float64), then the angles in
// float32, cast to the hidden dtype.
func (m *Model) rotary(positions *Node, dtype dtypes.DType) (cos, sin *Node) {
	g := positions.Graph()
	exponents := DivScalar(MulScalar(Iota(g, shapes.Make(dtypes.Float32, m.cfg.HeadDim/2), 0), 2), float64(m.cfg.HeadDim))
	invFreq := Reciprocal(Pow(Scalar(g, dtypes.Float32, m.cfg.RopeTheta), exponents))
	return attention.RotaryTablesFrom(positions, invFreq, dtype)
}

// block is one decoder layer. kv gives the keys and values to attend over (the chunk's own, or
// the cache once the chunk is written into it); allowed is the attention mask.
func (m *Model) block(p lm.Params, l int, x, cos, sin, allowed *Node, kv attention.KV) *Node {
	c := m.cfg
	B, T := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	H, KV, D := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim

	a := m.rmsNorm(x, p(layerName(l, "input_layernorm.weight")))
	q := Reshape(m.linear(a, p(layerName(l, "self_attn.q_proj.weight"))), B, T, H, D)
	k := Reshape(m.linear(a, p(layerName(l, "self_attn.k_proj.weight"))), B, T, KV, D)
	v := Reshape(m.linear(a, p(layerName(l, "self_attn.v_proj.weight"))), B, T, KV, D)
	q, k = attention.ApplyRotary(q, cos, sin), attention.ApplyRotary(k, cos, sin)
	var attn *Node // [B, T, H*D]
	if m.train {
		attn = attention.GroupedQueryTraining(q, k, v, allowed, 1/math.Sqrt(float64(D)), 0)
	} else {
		attn = attention.GroupedQuery(q, k, v, kv, allowed, 1/math.Sqrt(float64(D)), 0)
	}
	x = Add(x, m.linear(attn, p(layerName(l, "self_attn.o_proj.weight"))))

	h := m.rmsNorm(x, p(layerName(l, "post_attention_layernorm.weight")))
	gate := geluTanh(m.linear(h, p(layerName(l, "mlp.gate_proj.weight"))))
	up := m.linear(h, p(layerName(l, "mlp.up_proj.weight")))
	return Add(x, m.linear(Mul(gate, up), p(layerName(l, "mlp.down_proj.weight"))))
}
