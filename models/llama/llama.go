// Package llama is the Llama architecture (Hugging Face LlamaForCausalLM, e.g.
// meta-llama/Llama-3.2-1B) and two close relatives run by the same code as configurations:
// Qwen2 (Qwen2ForCausalLM, Qwen2.5) and Qwen3 (Qwen3ForCausalLM, dense). It registers the
// config.json model_types "llama", "qwen2" and "qwen3" with models/lm.
//
// The computation follows Hugging Face's modeling_llama, modeling_qwen2 and modeling_qwen3, so a
// checkpoint folder loads with its tensor names unchanged and produces the same logits:
//
//	h0 = embed[tokens]                                    (no scaling, unlike Gemma)
//	for each layer:
//	  a  = RMSNorm(h)                                     (float32, cast back, then times w: not 1 + w)
//	  q,k,v = a Wq^T + bq, a Wk^T + bk, a Wv^T + bv       (biases: see below)
//	  q,k = RMSNorm(q), RMSNorm(k) over head_dim          (Qwen3 only: q_norm, k_norm, before RoPE)
//	  q,k = RoPE(q,k) at each token's position            (rotate_half, rope_theta, rope_scaling)
//	  h += o_proj(softmax(q k^T / sqrt(head_dim) + mask) v)  (GQA: head h uses kv head h/(H/KV))
//	  m  = RMSNorm(h) ; h += down(silu(gate(m)) * up(m))  (biases: mlp_bias)
//	logits = float32(RMSNorm(h) W^T)                      (W = lm_head, or embed if tie_word_embeddings)
//
// What differs between the three model types is read from config.json the way each Hugging Face
// class reads it:
//
//	            q/k/v bias        o bias            MLP bias   q/k norm   head_dim
//	llama       attention_bias    attention_bias    mlp_bias   no         head_dim or hidden/heads
//	qwen2       always            never             never      no         head_dim or hidden/heads
//	qwen3       attention_bias    attention_bias    never      yes        head_dim or hidden/heads
//
// RoPE's inverse frequencies are theta^(-2i/head_dim), changed by rope_scaling: "linear" divides
// them by factor (positions interpolated); "llama3" (Llama 3.1+) divides the low frequencies (wave
// length > original_max_position_embeddings / low_freq_factor) by factor, keeps the high ones
// (wave length < original_max_position_embeddings / high_freq_factor) and blends in between.
//
// The mask lets a token see earlier tokens of its own segment only, so several documents can be
// packed in one row and padding (segment 0) never leaks into real tokens.
//
// What would compute something else is refused with an error naming the config field: other
// rope_scaling types (dynamic, yarn, longrope), rope_scaling and Transformers v5's rope_parameters
// (the same keys with rope_theta, read as an equivalent) when both are set and disagree, partial
// rotary embeddings, sliding-window attention (Qwen2/Qwen3 use_sliding_window, layer_types),
// activations other than SiLU.
//
// The masks, RoPE's tables and rotation, grouped-query attention and the decoding cache are
// models/internal/attention's, shared with Gemma; the norms, projections and MLP are this file's.
package llama

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.

	"github.com/perpetual-ml/perpetual/models/internal/attention"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// The config.json model_types this package implements.
const (
	ModelTypeLlama = "llama"
	ModelTypeQwen2 = "qwen2"
	ModelTypeQwen3 = "qwen3"
)

func init() {
	for _, modelType := range []string{ModelTypeLlama, ModelTypeQwen2, ModelTypeQwen3} {
		lm.Register(modelType, func(raw json.RawMessage) (lm.Architecture, error) {
			cfg, err := ParseConfig(raw)
			if err != nil {
				return nil, err
			}
			return New(cfg)
		})
	}
}

// Config holds the config.json fields the architecture uses, with Hugging Face's names.
type Config struct {
	// ModelType is "llama", "qwen2" or "qwen3": it decides which fields below apply (see the
	// package documentation's table).
	ModelType             string  `json:"model_type"`
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
	HiddenAct             string  `json:"hidden_act"`
	// AttentionBias adds biases to q, k, v and o (llama, qwen3; Qwen2 always has q/k/v biases
	// and never an o bias, whatever this says).
	AttentionBias bool `json:"attention_bias"`
	// MLPBias adds biases to gate, up and down (llama only).
	MLPBias bool `json:"mlp_bias"`
	// TieWordEmbeddings makes the output projection the embedding (no lm_head.weight). Hugging
	// Face's default for all three model types is false.
	TieWordEmbeddings bool `json:"tie_word_embeddings"`
	// RopeScaling is config.json's rope_scaling object (null: plain RoPE). Transformers v5
	// writes the same keys, with rope_theta, as rope_parameters; ParseConfig reads either, and
	// both when they agree.
	RopeScaling *RopeScaling `json:"rope_scaling"`
	// ropeField is the config.json field RopeScaling came from, for errors ("" is rope_scaling).
	ropeField string

	// Fields that would change the computation in ways this implementation does not support; they
	// are read only to reject such configs instead of silently computing something else.
	UseSlidingWindow    bool     `json:"use_sliding_window"`
	LayerTypes          []string `json:"layer_types"`
	PartialRotaryFactor *float64 `json:"partial_rotary_factor"`
}

// RopeScaling is config.json's rope_scaling (or rope_parameters) object.
type RopeScaling struct {
	// RopeType is "default", "linear" or "llama3"; older configs call it "type".
	RopeType string  `json:"rope_type"`
	Type     string  `json:"type"`
	Factor   float64 `json:"factor"`
	// Llama 3 keys.
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings float64 `json:"original_max_position_embeddings"`
	// RopeTheta is only read from rope_parameters (Transformers v5).
	RopeTheta float64 `json:"rope_theta"`
}

// kind is the scaling type, whichever key names it ("" and "default" are plain RoPE).
func (r *RopeScaling) kind() string {
	if r == nil {
		return "default"
	}
	if r.RopeType != "" {
		return r.RopeType
	}
	if r.Type != "" {
		return r.Type
	}
	return "default"
}

// sameScaling reports whether r and o ask for the same RoPE scaling (type and its numbers;
// rope_theta, which only rope_parameters carries, is compared apart).
func (r *RopeScaling) sameScaling(o *RopeScaling) bool {
	return r.kind() == o.kind() && r.Factor == o.Factor && r.LowFreqFactor == o.LowFreqFactor &&
		r.HighFreqFactor == o.HighFreqFactor && r.OriginalMaxPositionEmbeddings == o.OriginalMaxPositionEmbeddings
}

// String is the scaling as an error message shows it.
func (r *RopeScaling) String() string {
	return fmt.Sprintf("rope_type=%q factor=%g low_freq_factor=%g high_freq_factor=%g original_max_position_embeddings=%g",
		r.kind(), r.Factor, r.LowFreqFactor, r.HighFreqFactor, r.OriginalMaxPositionEmbeddings)
}

// Defaults used when config.json omits a field that has a conventional value (those of the
// Hugging Face config classes). Sizes have no default: a config without them is an error rather
// than a silently different model.
const (
	defaultRMSNormEps = 1e-6
	defaultRopeTheta  = 10000.0

	// Sanity limits far above any Llama or Qwen (Llama 3.1 405B has 126 layers).
	maxParams = 1e13
	maxLayers = 10000
)

// defaultMaxPositions is the config classes' max_position_embeddings default.
var defaultMaxPositions = map[string]int{ModelTypeLlama: 2048, ModelTypeQwen2: 32768, ModelTypeQwen3: 32768}

// ParseConfig reads and validates a Llama, Qwen2 or Qwen3 config.json. Errors name the offending
// field.
func ParseConfig(raw json.RawMessage) (Config, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		// A field of the wrong type still lets the others decode, model_type included.
		return cfg, fmt.Errorf("%s config.json: %w", cmp.Or(cfg.ModelType, "llama"), err)
	}
	var extra struct {
		RopeParameters *RopeScaling `json:"rope_parameters"`
	}
	if err := json.Unmarshal(raw, &extra); err != nil {
		return cfg, fmt.Errorf("%s config.json: %w", cfg.ModelType, err)
	}
	if p := extra.RopeParameters; p != nil {
		// Transformers v5 writes rope_theta and the scaling keys together as rope_parameters; a
		// file may still carry the v4 fields beside it (converted configs), which is harmless as
		// long as both say the same, and ambiguous otherwise.
		if cfg.RopeTheta != 0 && p.RopeTheta != 0 && cfg.RopeTheta != p.RopeTheta {
			return cfg, fmt.Errorf("%s config.json: rope_theta=%g and rope_parameters.rope_theta=%g disagree; keep one",
				cfg.ModelType, cfg.RopeTheta, p.RopeTheta)
		}
		if s := cfg.RopeScaling; s != nil && !s.sameScaling(p) {
			return cfg, fmt.Errorf("%s config.json: rope_scaling (%s) and rope_parameters (%s) disagree; keep one",
				cfg.ModelType, s, p)
		}
		if cfg.RopeTheta == 0 {
			cfg.RopeTheta = p.RopeTheta
		}
		cfg.RopeScaling, cfg.ropeField = p, "rope_parameters"
	}
	if cfg.NumKeyValueHeads == 0 && cfg.ModelType == ModelTypeLlama {
		cfg.NumKeyValueHeads = cfg.NumAttentionHeads // LlamaConfig's default; Qwen's (32) is not.
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
		cfg.MaxPositionEmbeddings = defaultMaxPositions[cfg.ModelType]
	}
	if cfg.HiddenAct == "" {
		cfg.HiddenAct = "silu"
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
	if _, ok := defaultMaxPositions[c.ModelType]; !ok {
		return fmt.Errorf("llama config.json: model_type=%q is not one of llama, qwen2, qwen3", c.ModelType)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s config.json: %s", c.ModelType, fmt.Sprintf(format, args...))
	}
	sizes := c.sizes()
	// The head is counted apart from the embedding, tied or not.
	if err := sizes.Check(attention.Limits{MaxParams: maxParams, MaxLayers: maxLayers, VocabMatrices: 2}); err != nil {
		return bad("%v", err)
	}
	if c.HiddenAct != "silu" && c.HiddenAct != "swish" {
		return bad("hidden_act=%q is not supported (the gated MLP is SiLU: silu)", c.HiddenAct)
	}
	if c.UseSlidingWindow {
		return bad("use_sliding_window=true is not supported (only full attention)")
	}
	for i, t := range c.LayerTypes {
		if t != "full_attention" {
			return bad("layer_types[%d]=%q is not supported (only full_attention)", i, t)
		}
	}
	if p := c.PartialRotaryFactor; p != nil && *p != 1 {
		return bad("partial_rotary_factor=%g is not supported (RoPE on the whole head: 1)", *p)
	}
	if c.ModelType != ModelTypeLlama && c.MLPBias {
		// Hugging Face's Qwen MLPs have no biases whatever the config says; a config saying
		// otherwise was not made by Transformers for this model type.
		return bad("mlp_bias=true is not supported by %s (its MLP has no biases)", c.ModelType)
	}
	_, err := c.invFreq()
	return err
}

// invFreq returns RoPE's inverse frequencies [head_dim/2] with rope_scaling applied, as Hugging
// Face's rope initialisation functions (default, linear, llama3) compute them.
func (c Config) invFreq() ([]float64, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s config.json: %s.%s", c.ModelType, cmp.Or(c.ropeField, "rope_scaling"), fmt.Sprintf(format, args...))
	}
	inv := attention.InvFreq(c.RopeTheta, c.HeadDim)
	r := c.RopeScaling
	switch r.kind() {
	case "default":
		return inv, nil
	case "linear":
		if !(r.Factor >= 1) || math.IsInf(r.Factor, 0) {
			return nil, bad("factor must be a number >= 1 for linear scaling, got %g", r.Factor)
		}
		for i := range inv {
			inv[i] /= r.Factor
		}
		return inv, nil
	case "llama3":
		switch {
		case !(r.Factor >= 1) || math.IsInf(r.Factor, 0):
			return nil, bad("factor must be a number >= 1 for llama3 scaling, got %g", r.Factor)
		case !(r.LowFreqFactor > 0) || !(r.HighFreqFactor > r.LowFreqFactor) || math.IsInf(r.HighFreqFactor, 0):
			return nil, bad("low_freq_factor (%g) and high_freq_factor (%g) must satisfy 0 < low < high",
				r.LowFreqFactor, r.HighFreqFactor)
		case !(r.OriginalMaxPositionEmbeddings >= 1) || math.IsInf(r.OriginalMaxPositionEmbeddings, 0):
			return nil, bad("original_max_position_embeddings must be a positive number, got %g", r.OriginalMaxPositionEmbeddings)
		}
		old := r.OriginalMaxPositionEmbeddings
		lowFreqWavelen, highFreqWavelen := old/r.LowFreqFactor, old/r.HighFreqFactor
		for i, f := range inv {
			switch wavelen := 2 * math.Pi / f; {
			case wavelen < highFreqWavelen: // high frequencies: unchanged
			case wavelen > lowFreqWavelen: // low frequencies: interpolated
				inv[i] = f / r.Factor
			default: // in between: a smooth blend of the two
				smooth := (old/wavelen - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
				inv[i] = (1-smooth)*f/r.Factor + smooth*f
			}
		}
		return inv, nil
	}
	return nil, bad("rope_type=%q is not supported (default, linear or llama3)", r.kind())
}

// Model is the architecture for one config; it implements lm.Architecture.
type Model struct {
	cfg     Config
	invFreq []float64 // RoPE inverse frequencies, rope_scaling applied

	// What the model type reads from the config (the package documentation's table).
	qkvBias, oBias, mlpBias, qkNorm bool
}

var _ lm.Architecture = (*Model)(nil)

// New returns the architecture for a validated config.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	inv, _ := cfg.invFreq()
	m := &Model{cfg: cfg, invFreq: inv}
	switch cfg.ModelType {
	case ModelTypeLlama:
		m.qkvBias, m.oBias, m.mlpBias = cfg.AttentionBias, cfg.AttentionBias, cfg.MLPBias
	case ModelTypeQwen2:
		m.qkvBias = true
	case ModelTypeQwen3:
		m.qkvBias, m.oBias, m.qkNorm = cfg.AttentionBias, cfg.AttentionBias, true
	}
	return m, nil
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Family implements lm.Architecture: the config's model_type (llama, qwen2 or qwen3).
func (m *Model) Family() string { return m.cfg.ModelType }

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
	headName      = "lm_head.weight"
)

func layerName(layer int, suffix string) string {
	return fmt.Sprintf("model.layers.%d.%s", layer, suffix)
}

// Specs implements lm.Architecture. Shapes are PyTorch's: linear weights are [out, in].
func (m *Model) Specs() []lm.ParamSpec {
	c := m.cfg
	embed := lm.ParamSpec{Name: embedName, Shape: []int{c.VocabSize, c.HiddenSize}}
	if c.TieWordEmbeddings {
		embed.Aliases = []string{headName}
	}
	specs := []lm.ParamSpec{embed}
	linear := func(l int, name string, out, in int, bias bool) {
		specs = append(specs, lm.ParamSpec{Name: layerName(l, name+".weight"), Shape: []int{out, in}})
		if bias {
			specs = append(specs, lm.ParamSpec{Name: layerName(l, name+".bias"), Shape: []int{out}})
		}
	}
	q, kv, h, inter := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim, c.HiddenSize, c.IntermediateSize
	for l := range c.NumHiddenLayers {
		specs = append(specs, lm.ParamSpec{Name: layerName(l, "input_layernorm.weight"), Shape: []int{h}})
		linear(l, "self_attn.q_proj", q, h, m.qkvBias)
		linear(l, "self_attn.k_proj", kv, h, m.qkvBias)
		linear(l, "self_attn.v_proj", kv, h, m.qkvBias)
		linear(l, "self_attn.o_proj", h, q, m.oBias)
		if m.qkNorm {
			specs = append(specs,
				lm.ParamSpec{Name: layerName(l, "self_attn.q_norm.weight"), Shape: []int{c.HeadDim}},
				lm.ParamSpec{Name: layerName(l, "self_attn.k_norm.weight"), Shape: []int{c.HeadDim}})
		}
		specs = append(specs, lm.ParamSpec{Name: layerName(l, "post_attention_layernorm.weight"), Shape: []int{h}})
		linear(l, "mlp.gate_proj", inter, h, m.mlpBias)
		linear(l, "mlp.up_proj", inter, h, m.mlpBias)
		linear(l, "mlp.down_proj", h, inter, m.mlpBias)
	}
	specs = append(specs, lm.ParamSpec{Name: finalNormName, Shape: []int{h}})
	if !c.TieWordEmbeddings {
		specs = append(specs, lm.ParamSpec{Name: headName, Shape: []int{c.VocabSize, h}})
	}
	return specs
}

// NumParams is the number of parameters (a tied head counted once).
func (m *Model) NumParams() int {
	return lm.NumParams(m.Specs())
}

// LogitsFLOPs implements lm.FLOPCounter with Gemma v1's accounting
// (attention.Sizes.DecoderFLOPs; docs/benchmarks.md, "FLOP counts"). Qwen2's biases, Qwen3's
// q/k norms and the other elementwise work are left out, as Gemma's norms are, so families of
// the same shapes count the same FLOPs and their throughput per FLOP compares the whole graphs.
func (m *Model) LogitsFLOPs(T int) float64 {
	return m.cfg.sizes().DecoderFLOPs(T)
}

var _ lm.FLOPCounter = (*Model)(nil)

// CacheShapes implements lm.Architecture: per layer, keys then values, each
// [1, num_key_value_heads, maxLength, head_dim]. Keys are stored after RoPE (and q/k norm).
func (m *Model) CacheShapes(maxLength int, dtype dtypes.DType) []lm.CacheShape {
	return attention.CacheShapes(m.cfg.NumHiddenLayers, m.cfg.NumKeyValueHeads, m.cfg.HeadDim, maxLength, dtype)
}

// Logits implements lm.Architecture: each token attends to the earlier tokens of its own segment.
func (m *Model) Logits(p lm.Params, tokens, positions, segments *Node) *Node {
	allowed := attention.PackedMask(positions, segments, 0)
	x := m.embed(p, tokens)
	cos, sin := attention.RotaryTables(positions, m.invFreq, x.DType())
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
	cos, sin := attention.RotaryTables(attention.StepPositions(start, S), m.invFreq, x.DType())
	newCache := make([]*Node, len(cache))
	for l := range m.cfg.NumHiddenLayers {
		x = m.block(p, l, x, cos, sin, allowed, attention.CacheWriter(cache, newCache, l, start))
	}
	return m.head(p, x), newCache
}

// embed looks up token embeddings (Llama does not scale them).
func (m *Model) embed(p lm.Params, tokens *Node) *Node {
	return Gather(p(embedName), ExpandAxes(ConvertDType(tokens, dtypes.Int32), -1))
}

// head applies the final norm and the output projection (lm_head, or the tied embedding);
// logits are float32.
func (m *Model) head(p lm.Params, x *Node) *Node {
	x = m.rmsNorm(x, p(finalNormName))
	w := embedName
	if !m.cfg.TieWordEmbeddings {
		w = headName
	}
	return ConvertDType(linear(x, p(w), nil), dtypes.Float32)
}

// rmsNorm is Llama's RMSNorm over the last axis: normalised in float32, cast back to the input
// dtype, then multiplied by w (Hugging Face's weight * x.to(input_dtype); Gemma differs twice:
// 1 + w, multiplied in float32). It uses 1/Sqrt rather than Rsqrt because GoMLX has no gradient
// for Rsqrt.
func (m *Model) rmsNorm(x, w *Node) *Node {
	xf := ConvertDType(x, dtypes.Float32)
	meanSq := ReduceAndKeep(Square(xf), ReduceMean, -1)
	eps := Scalar(x.Graph(), dtypes.Float32, m.cfg.RMSNormEps)
	normed := ConvertDType(Div(xf, Sqrt(Add(meanSq, eps))), x.DType())
	return Mul(normed, ExpandLeftToRank(w, normed.Rank()))
}

// linear is x W^T (+ b) for a PyTorch-layout weight [out, in], contracting x's last axis; b may
// be nil.
func linear(x, w, b *Node) *Node {
	y := DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
	if b != nil {
		y = Add(y, ExpandLeftToRank(b, y.Rank()))
	}
	return y
}

// proj applies the layer's linear map name ("self_attn.q_proj"), with its bias when it has one.
func (m *Model) proj(p lm.Params, l int, name string, bias bool, x *Node) *Node {
	var b *Node
	if bias {
		b = p(layerName(l, name+".bias"))
	}
	return linear(x, p(layerName(l, name+".weight")), b)
}

// block is one decoder layer. kv gives the keys and values to attend over (the chunk's own, or
// the cache once the chunk is written into it); allowed is the attention mask. cos and sin are
// RoPE's tables for the chunk's positions (inverse frequencies with rope_scaling applied,
// computed once on the host).
func (m *Model) block(p lm.Params, l int, x, cos, sin, allowed *Node, kv attention.KV) *Node {
	c := m.cfg
	B, T := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	H, KV, D := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim

	a := m.rmsNorm(x, p(layerName(l, "input_layernorm.weight")))
	q := Reshape(m.proj(p, l, "self_attn.q_proj", m.qkvBias, a), B, T, H, D)
	k := Reshape(m.proj(p, l, "self_attn.k_proj", m.qkvBias, a), B, T, KV, D)
	v := Reshape(m.proj(p, l, "self_attn.v_proj", m.qkvBias, a), B, T, KV, D)
	if m.qkNorm { // Qwen3: RMSNorm of each head's query and key, before RoPE
		q = m.rmsNorm(q, p(layerName(l, "self_attn.q_norm.weight")))
		k = m.rmsNorm(k, p(layerName(l, "self_attn.k_norm.weight")))
	}
	q, k = attention.ApplyRotary(q, cos, sin), attention.ApplyRotary(k, cos, sin)
	attn := attention.GroupedQuery(q, k, v, kv, allowed, 1/math.Sqrt(float64(D)), 0) // [B, T, H*D]
	x = Add(x, m.proj(p, l, "self_attn.o_proj", m.oBias, attn))

	h := m.rmsNorm(x, p(layerName(l, "post_attention_layernorm.weight")))
	gate := silu(m.proj(p, l, "mlp.gate_proj", m.mlpBias, h))
	up := m.proj(p, l, "mlp.up_proj", m.mlpBias, h)
	return Add(x, m.proj(p, l, "mlp.down_proj", m.mlpBias, Mul(gate, up)))
}

// silu is x * sigmoid(x) (PyTorch's SiLU, Hugging Face's "silu"/"swish").
func silu(x *Node) *Node { return Mul(x, Sigmoid(x)) }
