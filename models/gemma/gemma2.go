package gemma

// Gemma 2 (Hugging Face Gemma2ForCausalLM, model_type "gemma2", e.g. google/gemma-2-2b) and
// Gemma 3 text (Gemma3ForCausalLM, model_type "gemma3_text", e.g. google/gemma-3-1b-it): one
// architecture, Model2, configured by model_type. It follows modeling_gemma2 and modeling_gemma3:
//
//	h0 = embed[tokens] * sqrt(hidden)                        (normalizer cast to the hidden dtype)
//	for each layer l (sliding or global, see below):
//	  a  = RMSNorm(h)                                        (input_layernorm; every norm: float32, 1 + w)
//	  q,k,v = a Wq^T, a Wk^T, a Wv^T
//	  q,k = RMSNorm(q), RMSNorm(k) over head_dim             (Gemma 3 only: q_norm, k_norm, before RoPE)
//	  q,k = RoPE(q,k) at each token's position               (Gemma 3: rope_local_base_freq on sliding
//	                                                          layers, rope_theta (+ linear rope_scaling) on global ones)
//	  s  = q k^T * query_pre_attn_scalar^-1/2
//	  s  = cap * tanh(s / cap)                               (cap = attn_logit_softcapping, when set)
//	  h += RMSNorm(o_proj(softmax(s + mask) v))              (post_attention_layernorm)
//	  m  = RMSNorm(h)                                        (pre_feedforward_layernorm)
//	  h += RMSNorm(down(gelu_tanh(gate(m)) * up(m)))         (post_feedforward_layernorm)
//	z = RMSNorm(h) embed^T                                   (tied head)
//	logits = float32(cap * tanh(z / cap))                    (cap = final_logit_softcapping, when set)
//
// The mask lets a token see earlier tokens of its own segment; on a sliding layer only those
// whose position is within sliding_window of its own (key position > query position - window),
// in scoring, packed training and cached decoding alike. Which layers slide: layer_types when
// config.json has it; otherwise Gemma 2 slides on even layers (0, 2, ...) and Gemma 3 on every
// layer but each sliding_window_pattern-th (layers 5, 11, ... are global for the pattern 6).

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.

	"github.com/perpetual-ml/perpetual/models/internal/attention"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// The config.json model_types Model2 implements.
const (
	ModelType2 = "gemma2"
	ModelType3 = "gemma3_text"
)

// Layer kinds, as config.json's layer_types names them.
const (
	SlidingAttention = "sliding_attention"
	FullAttention    = "full_attention"
)

func init() {
	for _, modelType := range []string{ModelType2, ModelType3} {
		lm.Register(modelType, func(raw json.RawMessage) (lm.Architecture, error) {
			cfg, err := ParseConfig2(raw)
			if err != nil {
				return nil, err
			}
			return New2(cfg)
		})
	}
}

// Config2 holds the config.json fields of Gemma 2 and Gemma 3 text, with Hugging Face's names.
// Fields marked (gemma3_text) are ignored for gemma2, as Transformers' Gemma2Config does.
type Config2 struct {
	// ModelType is "gemma2" or "gemma3_text".
	ModelType             string  `json:"model_type"`
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"`
	HeadDim               int     `json:"head_dim"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	// HiddenActivation is the MLP's activation (Transformers reads hidden_activation only, not
	// hidden_act, for these model types).
	HiddenActivation string `json:"hidden_activation"`
	// QueryPreAttnScalar sets the attention scale: scores are q k^T / sqrt(query_pre_attn_scalar).
	QueryPreAttnScalar float64 `json:"query_pre_attn_scalar"`
	// AttnLogitSoftcapping caps attention scores at ±value with tanh (nil: no cap).
	AttnLogitSoftcapping *float64 `json:"attn_logit_softcapping"`
	// FinalLogitSoftcapping caps the output logits at ±value with tanh (nil: no cap).
	FinalLogitSoftcapping *float64 `json:"final_logit_softcapping"`
	// SlidingWindow is how many positions a sliding layer sees, its own included.
	SlidingWindow *int `json:"sliding_window"`
	// LayerTypes, when present, says per layer "sliding_attention" or "full_attention".
	LayerTypes []string `json:"layer_types"`
	// SlidingWindowPattern (gemma3_text): without layer_types, every pattern-th layer is global.
	SlidingWindowPattern int `json:"sliding_window_pattern"`
	// RopeTheta is the RoPE base (of the global layers, for Gemma 3).
	RopeTheta float64 `json:"rope_theta"`
	// RopeLocalBaseFreq (gemma3_text) is the RoPE base of the sliding layers.
	RopeLocalBaseFreq float64 `json:"rope_local_base_freq"`
	// RopeScaling (gemma3_text) scales the global layers' RoPE: null, "default" or "linear".
	// ParseConfig2 also reads these three RoPE settings from Transformers v5's rope_parameters
	// (see ropeParameters).
	RopeScaling *RopeScaling2 `json:"rope_scaling"`

	// Fields that would change the computation in ways this implementation does not support; they
	// are read only to reject such configs instead of silently computing something else.
	AttentionBias             bool  `json:"attention_bias"`
	TieWordEmbeddings         *bool `json:"tie_word_embeddings"`
	UseBidirectionalAttention bool  `json:"use_bidirectional_attention"`
}

// RopeScaling2 is Gemma 3's rope_scaling object (the 4B and larger models use linear scaling
// with factor 8 on their global layers).
type RopeScaling2 struct {
	// RopeType is "default" or "linear"; older configs call it "type".
	RopeType string  `json:"rope_type"`
	Type     string  `json:"type"`
	Factor   float64 `json:"factor"`
	// RopeTheta is only read from rope_parameters (Transformers v5), where the base sits
	// beside the scaling.
	RopeTheta float64 `json:"rope_theta"`
}

// kind is the scaling type, whichever key names it ("" and "default" are plain RoPE).
func (r *RopeScaling2) kind() string {
	switch {
	case r == nil:
		return "default"
	case r.RopeType != "":
		return r.RopeType
	case r.Type != "":
		return r.Type
	}
	return "default"
}

// defaultConfig2 is what Transformers' Gemma2Config and Gemma3TextConfig assume for absent
// fields other than sizes (sizes have no default: a config without them is an error rather than
// a silently different model). An explicit null soft cap stays null: no cap.
func defaultConfig2(modelType string) (Config2, bool) {
	ptr := func(v float64) *float64 { return &v }
	window := 4096
	c := Config2{ModelType: modelType, RMSNormEps: 1e-6, HiddenActivation: "gelu_pytorch_tanh",
		QueryPreAttnScalar: 256, SlidingWindow: &window}
	switch modelType {
	case ModelType2:
		c.MaxPositionEmbeddings = 8192
		c.RopeTheta = 10000
		c.AttnLogitSoftcapping, c.FinalLogitSoftcapping = ptr(50), ptr(30)
	case ModelType3:
		c.MaxPositionEmbeddings = 131072
		c.RopeTheta, c.RopeLocalBaseFreq = 1e6, 10000
		c.SlidingWindowPattern = 6
	default:
		return c, false
	}
	return c, true
}

// ParseConfig2 reads and validates a Gemma 2 or Gemma 3 text config.json. Errors name the
// offending field.
func ParseConfig2(raw json.RawMessage) (Config2, error) {
	var head struct {
		ModelType string `json:"model_type"`
	}
	_ = json.Unmarshal(raw, &head) // a malformed file fails below, with the model type if it decoded
	cfg, ok := defaultConfig2(head.ModelType)
	if !ok {
		return cfg, fmt.Errorf("gemma config.json: model_type=%q is not %s or %s", head.ModelType, ModelType2, ModelType3)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, fmt.Errorf("%s config.json: %w", head.ModelType, err)
	}
	if err := cfg.ropeParameters(raw); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// ropeParameters reads Transformers v5's rope_parameters into RopeTheta, RopeLocalBaseFreq and
// RopeScaling. Gemma 2 has one object ({"rope_type": "default", "rope_theta": ...}); Gemma 3
// one per layer kind, {"full_attention": {...}, "sliding_attention": {...}}: the full one is
// rope_theta with rope_scaling, the sliding one rope_local_base_freq (plain RoPE). The v4 fields
// may stand beside it (converted configs) when they say the same; when they disagree the file
// is ambiguous and refused, naming both.
func (c *Config2) ropeParameters(raw json.RawMessage) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s config.json: %s", c.ModelType, fmt.Sprintf(format, args...))
	}
	var given struct { // the v4 fields as written, to tell absent from the defaults
		RopeTheta         *float64        `json:"rope_theta"`
		RopeLocalBaseFreq *float64        `json:"rope_local_base_freq"`
		RopeScaling       *RopeScaling2   `json:"rope_scaling"`
		RopeParameters    json.RawMessage `json:"rope_parameters"`
	}
	if err := json.Unmarshal(raw, &given); err != nil {
		return bad("%v", err)
	}
	if s := string(given.RopeParameters); s == "" || s == "null" {
		return nil
	}
	var byKind map[string]json.RawMessage
	if err := json.Unmarshal(given.RopeParameters, &byKind); err != nil {
		return bad("rope_parameters must be an object: %v", err)
	}
	_, keyed := byKind[FullAttention]
	if _, ok := byKind[SlidingAttention]; ok {
		keyed = true
	}
	// theta sets a RoPE base from rope_parameters' field, checking the v4 field beside it.
	theta := func(dst *float64, v4 *float64, v4Name, field string, v5 float64) error {
		switch {
		case v5 == 0: // absent: the v4 field or the default stands
		case v4 != nil && *v4 != v5:
			return bad("%s=%g and %s.rope_theta=%g disagree; keep one", v4Name, *v4, field, v5)
		default:
			*dst = v5
		}
		return nil
	}
	decode := func(field string, raw json.RawMessage) (*RopeScaling2, error) {
		var r RopeScaling2
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, bad("%s: %v", field, err)
		}
		return &r, nil
	}
	if c.ModelType == ModelType2 {
		if keyed {
			return bad("rope_parameters keyed by layer kind is not supported for gemma2 (every layer has the same " +
				"RoPE: write one {\"rope_type\": \"default\", \"rope_theta\": ...} object)")
		}
		r, err := decode("rope_parameters", given.RopeParameters)
		if err != nil {
			return err
		}
		if r.kind() != "default" {
			return bad("rope_parameters.rope_type=%q is not supported (Gemma 2 uses plain RoPE: default)", r.kind())
		}
		return theta(&c.RopeTheta, given.RopeTheta, "rope_theta", "rope_parameters", r.RopeTheta)
	}
	if !keyed {
		return bad("rope_parameters must be keyed by %s and %s for gemma3_text (their RoPE bases differ)", FullAttention, SlidingAttention)
	}
	for _, kind := range slices.Sorted(maps.Keys(byKind)) { // sorted: the same error every run
		field := "rope_parameters." + kind
		r, err := decode(field, byKind[kind])
		if err != nil {
			return err
		}
		switch kind {
		case FullAttention:
			switch r.kind() {
			case "default", "linear":
			default:
				return bad("%s.rope_type=%q is not supported (default or linear)", field, r.kind())
			}
			if r.kind() == "linear" && (!(r.Factor >= 1) || math.IsInf(r.Factor, 0)) {
				return bad("%s.factor must be a number >= 1 for linear scaling, got %g", field, r.Factor)
			}
			if s := given.RopeScaling; s != nil && (s.kind() != r.kind() || (s.kind() == "linear" && s.Factor != r.Factor)) {
				return bad("rope_scaling (rope_type=%q factor=%g) and %s (rope_type=%q factor=%g) disagree; keep one",
					s.kind(), s.Factor, field, r.kind(), r.Factor)
			}
			if err := theta(&c.RopeTheta, given.RopeTheta, "rope_theta", field, r.RopeTheta); err != nil {
				return err
			}
			c.RopeScaling = &RopeScaling2{RopeType: r.kind(), Factor: r.Factor}
		case SlidingAttention:
			if r.kind() != "default" {
				return bad("%s.rope_type=%q is not supported (Gemma 3's sliding layers use plain RoPE: default)", field, r.kind())
			}
			if err := theta(&c.RopeLocalBaseFreq, given.RopeLocalBaseFreq, "rope_local_base_freq", field, r.RopeTheta); err != nil {
				return err
			}
		default:
			return bad("%s is not a layer kind (%s or %s)", field, FullAttention, SlidingAttention)
		}
	}
	return nil
}

// sizes are the config's sizes as the shared attention code reads them.
func (c Config2) sizes() attention.Sizes {
	return attention.Sizes{VocabSize: c.VocabSize, HiddenSize: c.HiddenSize, IntermediateSize: c.IntermediateSize,
		NumHiddenLayers: c.NumHiddenLayers, NumAttentionHeads: c.NumAttentionHeads, NumKeyValueHeads: c.NumKeyValueHeads,
		HeadDim: c.HeadDim, MaxPositionEmbeddings: c.MaxPositionEmbeddings, RMSNormEps: c.RMSNormEps, RopeTheta: c.RopeTheta}
}

// Validate checks every field the graphs rely on.
func (c Config2) Validate() error {
	if _, ok := defaultConfig2(c.ModelType); !ok {
		return fmt.Errorf("gemma config.json: model_type=%q is not %s or %s", c.ModelType, ModelType2, ModelType3)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s config.json: %s", c.ModelType, fmt.Sprintf(format, args...))
	}
	sizes := c.sizes()
	if err := sizes.Check(attention.Limits{MaxParams: maxParams, MaxLayers: maxLayers, VocabMatrices: 1}); err != nil {
		return bad("%v", err)
	}
	finite := func(v float64) bool { return !math.IsInf(v, 0) && !math.IsNaN(v) }
	if !(c.QueryPreAttnScalar > 0) || !finite(c.QueryPreAttnScalar) {
		return bad("query_pre_attn_scalar must be a positive number, got %g", c.QueryPreAttnScalar)
	}
	for _, f := range []struct {
		name  string
		value *float64
	}{{"attn_logit_softcapping", c.AttnLogitSoftcapping}, {"final_logit_softcapping", c.FinalLogitSoftcapping}} {
		if f.value != nil && (!(*f.value > 0) || !finite(*f.value)) {
			return bad("%s must be null or a positive number, got %g", f.name, *f.value)
		}
	}
	if c.SlidingWindow == nil || *c.SlidingWindow < 1 {
		return bad("sliding_window must be a positive integer (the sliding layers' window)")
	}
	if c.LayerTypes != nil {
		if len(c.LayerTypes) != c.NumHiddenLayers {
			return bad("layer_types has %d entries for num_hidden_layers=%d", len(c.LayerTypes), c.NumHiddenLayers)
		}
		for i, t := range c.LayerTypes {
			if t != SlidingAttention && t != FullAttention {
				return bad("layer_types[%d]=%q is not supported (%s or %s)", i, t, SlidingAttention, FullAttention)
			}
		}
	} else if c.ModelType == ModelType3 && c.SlidingWindowPattern < 1 {
		return bad("sliding_window_pattern must be a positive integer, got %d", c.SlidingWindowPattern)
	}
	if c.HiddenActivation != "gelu_pytorch_tanh" && c.HiddenActivation != "gelu_new" {
		// Transformers runs "gelu" exactly (erf) for these model types, unlike Gemma v1.
		return bad("hidden_activation=%q is not supported (gelu_pytorch_tanh)", c.HiddenActivation)
	}
	if c.AttentionBias {
		return bad("attention_bias=true is not supported (Gemma has no projection biases)")
	}
	if c.TieWordEmbeddings != nil && !*c.TieWordEmbeddings {
		return bad("tie_word_embeddings=false is not supported (Gemma's head is the embedding)")
	}
	if c.UseBidirectionalAttention {
		return bad("use_bidirectional_attention=true is not supported (causal language models only)")
	}
	switch c.ModelType {
	case ModelType2:
		if c.RopeScaling.kind() != "default" {
			return bad("rope_scaling type %q is not supported (Gemma 2 uses plain RoPE)", c.RopeScaling.kind())
		}
	case ModelType3:
		if !(c.RopeLocalBaseFreq > 1) || !finite(c.RopeLocalBaseFreq) {
			return bad("rope_local_base_freq must be a number > 1, got %g", c.RopeLocalBaseFreq)
		}
		if c.AttnLogitSoftcapping != nil {
			// Transformers' Gemma3Attention never applies it; computing it would differ from the
			// reference, ignoring it would hide a config that asks for it.
			return bad("attn_logit_softcapping=%g is not supported (Transformers' Gemma 3 does not apply it; want null)", *c.AttnLogitSoftcapping)
		}
		switch r := c.RopeScaling; r.kind() {
		case "default":
		case "linear":
			if !(r.Factor >= 1) || !finite(r.Factor) {
				return bad("rope_scaling.factor must be a number >= 1 for linear scaling, got %g", r.Factor)
			}
		default:
			return bad("rope_scaling.rope_type=%q is not supported (default or linear)", r.kind())
		}
	}
	return nil
}

// Sliding reports which layers use sliding-window attention (see the file's comment).
func (c Config2) Sliding() []bool {
	out := make([]bool, c.NumHiddenLayers)
	for l := range out {
		switch {
		case c.LayerTypes != nil:
			out[l] = c.LayerTypes[l] == SlidingAttention
		case c.ModelType == ModelType2:
			out[l] = l%2 == 0
		default:
			out[l] = (l+1)%c.SlidingWindowPattern != 0
		}
	}
	return out
}

// invFreq returns RoPE's inverse frequencies theta^(-2i/head_dim), divided by factor.
func invFreq(theta float64, headDim int, factor float64) []float64 {
	inv := attention.InvFreq(theta, headDim)
	for i := range inv {
		inv[i] /= factor
	}
	return inv
}

// Model2 is the Gemma 2 / Gemma 3 text architecture for one config; it implements
// lm.Architecture.
type Model2 struct {
	cfg     Config2
	sliding []bool
	// RoPE inverse frequencies of the global and the sliding layers (the same for Gemma 2).
	globalInv, localInv []float64
	qkNorm              bool    // Gemma 3: q_norm and k_norm
	scale               float64 // query_pre_attn_scalar^-1/2
	attnCap, finalCap   float64 // soft caps, 0 = none
	window              int
}

var _ lm.Architecture = (*Model2)(nil)

// New2 returns the architecture for a validated config.
func New2(cfg Config2) (*Model2, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model2{cfg: cfg, sliding: cfg.Sliding(), scale: math.Pow(cfg.QueryPreAttnScalar, -0.5), window: *cfg.SlidingWindow}
	if cfg.AttnLogitSoftcapping != nil {
		m.attnCap = *cfg.AttnLogitSoftcapping
	}
	if cfg.FinalLogitSoftcapping != nil {
		m.finalCap = *cfg.FinalLogitSoftcapping
	}
	factor := 1.0
	if cfg.RopeScaling.kind() == "linear" {
		factor = cfg.RopeScaling.Factor
	}
	m.globalInv = invFreq(cfg.RopeTheta, cfg.HeadDim, factor)
	m.localInv = m.globalInv
	if cfg.ModelType == ModelType3 {
		m.qkNorm = true
		m.localInv = invFreq(cfg.RopeLocalBaseFreq, cfg.HeadDim, 1)
	}
	return m, nil
}

// Config returns the model's configuration.
func (m *Model2) Config() Config2 { return m.cfg }

// Family implements lm.Architecture: the config's model_type (gemma2 or gemma3_text).
func (m *Model2) Family() string { return m.cfg.ModelType }

// CodeVersion implements lm.Architecture. Change it with any change to this file's numerics.
func (m *Model2) CodeVersion() string { return "1" }

// VocabSize implements lm.Architecture.
func (m *Model2) VocabSize() int { return m.cfg.VocabSize }

// MaxLength implements lm.Architecture: max_position_embeddings.
func (m *Model2) MaxLength() int { return m.cfg.MaxPositionEmbeddings }

// Specs implements lm.Architecture. Shapes are PyTorch's: linear weights are [out, in].
func (m *Model2) Specs() []lm.ParamSpec {
	c := m.cfg
	h, q, kv := c.HiddenSize, c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	specs := []lm.ParamSpec{{Name: embedName, Shape: []int{c.VocabSize, h}, Aliases: []string{tiedHeadAlias}}}
	add := func(l int, name string, shape ...int) {
		specs = append(specs, lm.ParamSpec{Name: layerName(l, name), Shape: shape})
	}
	for l := range c.NumHiddenLayers {
		add(l, "input_layernorm.weight", h)
		add(l, "self_attn.q_proj.weight", q, h)
		add(l, "self_attn.k_proj.weight", kv, h)
		add(l, "self_attn.v_proj.weight", kv, h)
		add(l, "self_attn.o_proj.weight", h, q)
		if m.qkNorm {
			add(l, "self_attn.q_norm.weight", c.HeadDim)
			add(l, "self_attn.k_norm.weight", c.HeadDim)
		}
		add(l, "post_attention_layernorm.weight", h)
		add(l, "pre_feedforward_layernorm.weight", h)
		add(l, "post_feedforward_layernorm.weight", h)
		add(l, "mlp.gate_proj.weight", c.IntermediateSize, h)
		add(l, "mlp.up_proj.weight", c.IntermediateSize, h)
		add(l, "mlp.down_proj.weight", h, c.IntermediateSize)
	}
	return append(specs, lm.ParamSpec{Name: finalNormName, Shape: []int{h}})
}

// NumParams is the number of parameters (the tied head counted once).
func (m *Model2) NumParams() int {
	return lm.NumParams(m.Specs())
}

// LogitsFLOPs implements lm.FLOPCounter with Gemma v1's accounting
// (attention.Sizes.DecoderFLOPs; docs/benchmarks.md, "FLOP counts"). The extra norms, q/k norms
// and soft caps of Gemma 2/3 are elementwise and left out, as Gemma v1's norms are, so a Gemma 2/3
// of Gemma v1's shapes counts the same FLOPs.
func (m *Model2) LogitsFLOPs(T int) float64 {
	return m.cfg.sizes().DecoderFLOPs(T)
}

var _ lm.FLOPCounter = (*Model2)(nil)

// CacheShapes implements lm.Architecture: per layer, keys then values, each
// [1, num_key_value_heads, length, head_dim], length maxLength on global layers and
// min(sliding_window, maxLength) on sliding ones: a sliding layer only ever sees the last
// sliding_window positions, so its cache is a ring (slot = position mod length).
func (m *Model2) CacheShapes(maxLength int, dtype dtypes.DType) []lm.CacheShape {
	return attention.SlidingCacheShapes(m.sliding, m.window, m.cfg.NumKeyValueHeads, m.cfg.HeadDim, maxLength, dtype)
}

// Logits implements lm.Architecture: each token attends to the earlier tokens of its own
// segment, on sliding layers only to those within sliding_window positions of its own (a packed
// item's positions restart at 0).
func (m *Model2) Logits(p lm.Params, tokens, positions, segments *Node) *Node {
	masks := [2]*Node{attention.PackedMask(positions, segments, 0), attention.PackedMask(positions, segments, m.window)}
	x := m.embed(p, tokens)
	rope := m.rotary(positions, x.DType())
	for l := range m.cfg.NumHiddenLayers {
		x = m.block(p, l, x, rope, masks, attention.Uncached)
	}
	return m.head(p, x)
}

// Step implements lm.Architecture: on global layers the chunk's keys and values are written
// into the cache at start and the chunk attends to cached positions < start+S (causally within
// the chunk); on sliding layers it attends to the ring of the last sliding_window positions
// before start, then to its own keys (only positions > its own - sliding_window), and the ring
// keeps the chunk's last ones. The caller must keep start+S <= maxLength of CacheShapes
// (DynamicUpdateSlice would clamp the global layers' write otherwise).
func (m *Model2) Step(p lm.Params, cache []*Node, tokens, start *Node) (*Node, []*Node) {
	S := tokens.Shape().Dimensions[1]
	var masks [2]*Node
	for l, sliding := range m.sliding { // one mask per kind, sized by that kind's cache
		switch length := cache[2*l].Shape().Dimensions[2]; {
		case sliding && masks[1] == nil:
			masks[1] = attention.RingStepMask(start, S, length, m.window)
		case !sliding && masks[0] == nil:
			masks[0] = attention.StepMask(start, S, length, 0)
		}
	}
	x := m.embed(p, tokens)
	rope := m.rotary(attention.StepPositions(start, S), x.DType())
	newCache := make([]*Node, len(cache))
	for l := range m.cfg.NumHiddenLayers {
		kv := attention.CacheWriter(cache, newCache, l, start)
		if m.sliding[l] {
			kv = attention.RingWriter(cache, newCache, l, start)
		}
		x = m.block(p, l, x, rope, masks, kv)
	}
	return m.head(p, x), newCache
}

// rope2 holds cos and sin [B, T, 1, head_dim] of the global and the sliding layers.
type rope2 struct{ globalCos, globalSin, localCos, localSin *Node }

func (m *Model2) rotary(positions *Node, dtype dtypes.DType) rope2 {
	var r rope2
	r.globalCos, r.globalSin = attention.RotaryTables(positions, m.globalInv, dtype)
	r.localCos, r.localSin = r.globalCos, r.globalSin
	if m.cfg.ModelType == ModelType3 {
		r.localCos, r.localSin = attention.RotaryTables(positions, m.localInv, dtype)
	}
	return r
}

// embed looks up token embeddings and scales them by sqrt(hidden_size).
func (m *Model2) embed(p lm.Params, tokens *Node) *Node {
	return scaledEmbedding(p(embedName), tokens, m.cfg.HiddenSize)
}

// head applies the final norm, the tied output projection and the final soft cap; logits are
// float32.
func (m *Model2) head(p lm.Params, x *Node) *Node {
	return tiedHead(rmsNorm(x, p(finalNormName), m.cfg.RMSNormEps), p(embedName), m.finalCap)
}

// block is one decoder layer. kv gives the keys and values to attend over (the chunk's own, or
// the cache once the chunk is written into it); masks are the full and the sliding masks.
func (m *Model2) block(p lm.Params, l int, x *Node, rope rope2, masks [2]*Node, kv attention.KV) *Node {
	c := m.cfg
	B, T := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	H, KV, D := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	norm := func(x *Node, name string) *Node { return rmsNorm(x, p(layerName(l, name)), c.RMSNormEps) }
	w := func(name string) *Node { return p(layerName(l, name)) }

	allowed, cos, sin := masks[0], rope.globalCos, rope.globalSin
	if m.sliding[l] {
		allowed, cos, sin = masks[1], rope.localCos, rope.localSin
	}

	a := norm(x, "input_layernorm.weight")
	q := Reshape(linear(a, w("self_attn.q_proj.weight")), B, T, H, D)
	k := Reshape(linear(a, w("self_attn.k_proj.weight")), B, T, KV, D)
	v := Reshape(linear(a, w("self_attn.v_proj.weight")), B, T, KV, D)
	if m.qkNorm { // Gemma 3: RMSNorm of each head's query and key, before RoPE
		q, k = norm(q, "self_attn.q_norm.weight"), norm(k, "self_attn.k_norm.weight")
	}
	q, k = attention.ApplyRotary(q, cos, sin), attention.ApplyRotary(k, cos, sin)
	attn := attention.GroupedQuery(q, k, v, kv, allowed, m.scale, m.attnCap) // [B, T, H*D]
	x = Add(x, norm(linear(attn, w("self_attn.o_proj.weight")), "post_attention_layernorm.weight"))

	h := norm(x, "pre_feedforward_layernorm.weight")
	mlp := linear(Mul(geluTanh(linear(h, w("mlp.gate_proj.weight"))), linear(h, w("mlp.up_proj.weight"))), w("mlp.down_proj.weight"))
	return Add(x, norm(mlp, "post_feedforward_layernorm.weight"))
}
