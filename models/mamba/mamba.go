// Package mamba is the Mamba v1 architecture (Hugging Face MambaForCausalLM, e.g.
// state-spaces/mamba-2.8b-hf) written once in GoMLX and registered with models/lm as "mamba".
//
// The computation follows Hugging Face's MambaMixer (the slow, pure-PyTorch path), so a checkpoint
// folder loads with its tensor names unchanged and produces the same logits:
//
//	h = embeddings[tokens]
//	for each layer:
//	  u      = RMSNorm(h)                       (float32 inside, weight applied as w)
//	  x, z   = split(in_proj(u))                (d_inner each)
//	  x      = SiLU(causal depthwise conv1d(x)) (conv_kernel taps, bias)
//	  dt,B,C = split(x_proj(x))                 (time_step_rank, state_size, state_size)
//	  dt     = softplus(dt_proj(dt))            ([d_inner], bias)
//	  A      = -exp(A_log)                      ([d_inner, state_size])
//	  s_t    = exp(dt_t A) * s_{t-1} + dt_t B_t x_t   (per channel and state; float32)
//	  y_t    = s_t C_t + D x_t
//	  h     += out_proj(y * SiLU(z))            (residual kept in float32 if residual_in_fp32)
//	logits = float32(RMSNorm_f(h) lm_head^T)    (lm_head tied to the embeddings by default)
//
// The recurrence is evaluated by the log-depth pairwise scan in scan.go, never as a graph
// unrolled over time steps; docs/mamba.md has the alternatives measured and why this one.
//
// Packed rows: a token sees only its own segment. The convolution window and the SSM state are
// reset where a segment starts (position 0 or a change of segment id), so several documents can
// share a row and padding (segment 0) never leaks into real tokens.
//
// Vocabulary padding: Hugging Face keeps pad_vocab_size_multiple in the config but does not pad;
// the embedding has exactly vocab_size rows (50280 for mamba-2.8b-hf, already a multiple of 8).
// This package does the same, so logits have vocab_size columns.
//
// The package depends only on GoMLX and models/lm: a family file is graph code; loading,
// batching, dtype policy and generation live in models/lm.
package mamba

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads like the equations.

	"github.com/perpetual-ml/perpetual/models/lm"
)

// ModelType is the config.json "model_type" this package implements.
const ModelType = "mamba"

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
	VocabSize        int     `json:"vocab_size"`
	HiddenSize       int     `json:"hidden_size"`
	StateSize        int     `json:"state_size"`
	NumHiddenLayers  int     `json:"num_hidden_layers"`
	LayerNormEpsilon float64 `json:"layer_norm_epsilon"`
	Expand           int     `json:"expand"`
	// IntermediateSize is d_inner; Hugging Face writes int(expand * hidden_size). When absent it is
	// derived; when present it must agree.
	IntermediateSize int  `json:"intermediate_size"`
	ConvKernel       int  `json:"conv_kernel"`
	UseBias          bool `json:"use_bias"`
	UseConvBias      bool `json:"use_conv_bias"`
	// TimeStepRank is the resolved rank of dt (config "auto" means ceil(hidden_size/16)).
	TimeStepRank         int    `json:"-"`
	ResidualInFP32       bool   `json:"residual_in_fp32"`
	TieWordEmbeddings    bool   `json:"tie_word_embeddings"`
	PadVocabSizeMultiple int    `json:"pad_vocab_size_multiple"`
	HiddenAct            string `json:"hidden_act"`
}

// ParseConfig reads and validates a Mamba config.json. Fields Hugging Face gives defaults to take
// those defaults (state_size 16, expand 2, conv_kernel 4, layer_norm_epsilon 1e-5, use_conv_bias,
// residual_in_fp32 and tie_word_embeddings true, time_step_rank "auto", hidden_act "silu"); sizes
// without a meaningful default (vocab_size, hidden_size, num_hidden_layers) are required. Errors
// name the offending field.
func ParseConfig(raw json.RawMessage) (Config, error) {
	cfg := Config{
		StateSize: 16, Expand: 2, ConvKernel: 4, LayerNormEpsilon: 1e-5, UseConvBias: true,
		ResidualInFP32: true, TieWordEmbeddings: true, PadVocabSizeMultiple: 8, HiddenAct: "silu",
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, fmt.Errorf("mamba config.json: %w", err)
	}
	var extra struct {
		TimeStepRank json.RawMessage `json:"time_step_rank"`
	}
	if err := json.Unmarshal(raw, &extra); err != nil {
		return cfg, fmt.Errorf("mamba config.json: %w", err)
	}
	rank := strings.TrimSpace(string(extra.TimeStepRank))
	switch {
	case rank == "" || rank == "null" || rank == `"auto"`:
		cfg.TimeStepRank = (cfg.HiddenSize + 15) / 16
	default:
		if err := json.Unmarshal(extra.TimeStepRank, &cfg.TimeStepRank); err != nil {
			return cfg, fmt.Errorf("mamba config.json: time_step_rank must be an integer or \"auto\", got %s", rank)
		}
	}
	if cfg.IntermediateSize == 0 {
		cfg.IntermediateSize = cfg.Expand * cfg.HiddenSize
	}
	return cfg, cfg.Validate()
}

// Validate checks every field the graphs rely on.
func (c Config) Validate() error {
	positive := []struct {
		name  string
		value int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"state_size", c.StateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"expand", c.Expand}, {"conv_kernel", c.ConvKernel},
		{"time_step_rank", c.TimeStepRank}, {"intermediate_size", c.IntermediateSize},
	}
	for _, f := range positive {
		if f.value <= 0 {
			return fmt.Errorf("mamba config.json: %s must be a positive integer, got %d", f.name, f.value)
		}
	}
	if c.ConvKernel < 2 {
		// The decoding cache holds conv_kernel-1 inputs; an empty window is not a real Mamba.
		return fmt.Errorf("mamba config.json: conv_kernel must be at least 2, got %d", c.ConvKernel)
	}
	if c.IntermediateSize != c.Expand*c.HiddenSize {
		return fmt.Errorf("mamba config.json: intermediate_size (%d) must equal expand*hidden_size (%d*%d)",
			c.IntermediateSize, c.Expand, c.HiddenSize)
	}
	if !(c.LayerNormEpsilon > 0) || math.IsInf(c.LayerNormEpsilon, 0) {
		return fmt.Errorf("mamba config.json: layer_norm_epsilon must be a positive number, got %g", c.LayerNormEpsilon)
	}
	if c.PadVocabSizeMultiple < 0 {
		return fmt.Errorf("mamba config.json: pad_vocab_size_multiple must not be negative, got %d", c.PadVocabSizeMultiple)
	}
	if c.HiddenAct != "silu" && c.HiddenAct != "swish" {
		return fmt.Errorf("mamba config.json: hidden_act=%q is not supported (Mamba uses silu)", c.HiddenAct)
	}
	return nil
}

// Model is the Mamba architecture for one config; it implements lm.Architecture.
type Model struct {
	cfg Config
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

// CodeVersion implements lm.Architecture. Change it with any change to the numerics of this
// package (mamba.go, scan.go).
func (m *Model) CodeVersion() string { return "1" }

// VocabSize implements lm.Architecture.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// MaxLength implements lm.Architecture: 0, a recurrent model has no length limit.
func (m *Model) MaxLength() int { return 0 }

// Parameter names, exactly as in Hugging Face checkpoints.
const (
	embedName     = "backbone.embeddings.weight"
	finalNormName = "backbone.norm_f.weight"
	headName      = "lm_head.weight"
)

func layerName(layer int, suffix string) string {
	return fmt.Sprintf("backbone.layers.%d.%s", layer, suffix)
}

// Specs implements lm.Architecture. Shapes are PyTorch's: linear weights are [out, in], the
// depthwise conv weight is [d_inner, 1, conv_kernel].
func (m *Model) Specs() []lm.ParamSpec {
	c := m.cfg
	H, DI, N, R := c.HiddenSize, c.IntermediateSize, c.StateSize, c.TimeStepRank
	embed := lm.ParamSpec{Name: embedName, Shape: []int{c.VocabSize, H}}
	if c.TieWordEmbeddings {
		embed.Aliases = []string{headName}
	}
	specs := []lm.ParamSpec{embed}
	add := func(l int, suffix string, shape ...int) {
		specs = append(specs, lm.ParamSpec{Name: layerName(l, suffix), Shape: shape})
	}
	for l := range c.NumHiddenLayers {
		add(l, "norm.weight", H)
		add(l, "mixer.in_proj.weight", 2*DI, H)
		if c.UseBias {
			add(l, "mixer.in_proj.bias", 2*DI)
		}
		add(l, "mixer.conv1d.weight", DI, 1, c.ConvKernel)
		if c.UseConvBias {
			add(l, "mixer.conv1d.bias", DI)
		}
		add(l, "mixer.x_proj.weight", R+2*N, DI)
		add(l, "mixer.dt_proj.weight", DI, R)
		add(l, "mixer.dt_proj.bias", DI)
		add(l, "mixer.A_log", DI, N)
		add(l, "mixer.D", DI)
		add(l, "mixer.out_proj.weight", H, DI)
		if c.UseBias {
			add(l, "mixer.out_proj.bias", H)
		}
	}
	specs = append(specs, lm.ParamSpec{Name: finalNormName, Shape: []int{H}})
	if !c.TieWordEmbeddings {
		specs = append(specs, lm.ParamSpec{Name: headName, Shape: []int{c.VocabSize, H}})
	}
	return specs
}

// NumParams is the number of parameters (a tied head counted once).
func (m *Model) NumParams() int {
	return lm.NumParams(m.Specs())
}

// LogitsFLOPs implements lm.FLOPCounter: the arithmetic of Logits on one row of T tokens, a
// multiply-add counting 2. Per token and layer (d hidden, DI = d_inner, N state, R dt rank,
// K conv kernel): in_proj 2·d·2DI, the depthwise convolution 2·DI·K, x_proj 2·DI·(R+2N),
// dt_proj 2·R·DI, out_proj 2·DI·d, and the selective scan 6·DI·N (the decay product dt·A, the
// input dt·x·B, the recurrence a·s + b and the output C·s); the head 2·d·V per token. Apart
// from the scan that is 2 x the parameters per token (the embedding read as the head).
// Norms, softplus, SiLU, exponentials and the gating (a few operations per activation) are
// left out. Linear in T: the scan's work does not grow with the row.
func (m *Model) LogitsFLOPs(T int) float64 {
	c := m.cfg
	d, di, n, r, k := float64(c.HiddenSize), float64(c.IntermediateSize), float64(c.StateSize), float64(c.TimeStepRank), float64(c.ConvKernel)
	perLayer := 2*d*2*di + 2*di*k + 2*di*(r+2*n) + 2*r*di + 2*di*d + 6*di*n
	return float64(T) * (float64(c.NumHiddenLayers)*perLayer + 2*d*float64(c.VocabSize))
}

var _ lm.FLOPCounter = (*Model)(nil)

// CacheShapes implements lm.Architecture: per layer the last conv_kernel-1 inputs of the
// convolution, [1, d_inner, conv_kernel-1] in the compute dtype, then the SSM state
// [1, d_inner, state_size] in float32 (the scan always runs in float32, as in Hugging Face). The
// state does not grow with the sequence, so maxLength is unused.
func (m *Model) CacheShapes(maxLength int, dtype dtypes.DType) []lm.CacheShape {
	c := m.cfg
	var out []lm.CacheShape
	for l := range c.NumHiddenLayers {
		out = append(out,
			lm.CacheShape{Name: fmt.Sprintf("layers.%d.conv", l), DType: dtype, Dimensions: []int{1, c.IntermediateSize, c.ConvKernel - 1}},
			lm.CacheShape{Name: fmt.Sprintf("layers.%d.ssm", l), DType: dtypes.Float32, Dimensions: []int{1, c.IntermediateSize, c.StateSize}})
	}
	return out
}

// Logits implements lm.Architecture.
func (m *Model) Logits(p lm.Params, tokens, positions, segments *Node) *Node {
	g := tokens.Graph()
	B, T := tokens.Shape().Dimensions[0], tokens.Shape().Dimensions[1]
	segments = ConvertDType(segments, dtypes.Int32)
	// A segment starts at t=0, at position 0, or where the segment id changes.
	prevSeg := Concatenate([]*Node{BroadcastToDims(Const(g, int32(-1)), B, 1), SliceAxis(segments, 1, AxisRange(0, T-1))}, 1)
	starts := LogicalOr(Equal(ConvertDType(positions, dtypes.Int32), ScalarZero(g, dtypes.Int32)), NotEqual(segments, prevSeg))
	// run[b, t] numbers the runs of tokens between starts: two tokens share history iff equal.
	run := CumSum(ConvertDType(starts, dtypes.Int32), 1)

	x := m.embed(p, tokens)
	for l := range m.cfg.NumHiddenLayers {
		x, _, _ = m.block(p, l, x, mixerState{run: run, starts: starts})
	}
	return m.head(p, x)
}

// Step implements lm.Architecture: the chunk continues from the cached conv window and SSM state,
// so prefill and token-by-token decoding give the logits of the whole-sequence scan. start is
// unused: the state already summarises everything before it.
func (m *Model) Step(p lm.Params, cache []*Node, tokens, start *Node) (*Node, []*Node) {
	x := m.embed(p, tokens)
	newCache := make([]*Node, len(cache))
	for l := range m.cfg.NumHiddenLayers {
		x, newCache[2*l], newCache[2*l+1] = m.block(p, l, x, mixerState{conv: cache[2*l], ssm: cache[2*l+1]})
	}
	return m.head(p, x), newCache
}

// mixerState is where a mixer's history comes from: either run ids of packed segments (Logits,
// starting from zero state) or the cached conv window and SSM state of one sequence (Step).
type mixerState struct {
	run, starts *Node // [B, T] int32 / bool, Logits only
	conv, ssm   *Node // [1, d_inner, K-1] and [1, d_inner, N], Step only
}

func (m *Model) embed(p lm.Params, tokens *Node) *Node {
	return Gather(p(embedName), ExpandAxes(ConvertDType(tokens, dtypes.Int32), -1))
}

// head applies the final norm and the output projection; logits are float32.
func (m *Model) head(p lm.Params, x *Node) *Node {
	w := p(embedName)
	if !m.cfg.TieWordEmbeddings {
		w = p(headName)
	}
	x = ConvertDType(m.rmsNorm(x, p(finalNormName)), w.DType())
	return ConvertDType(DotGeneral(x, []int{2}, nil, w, []int{1}, nil), dtypes.Float32)
}

// rmsNorm is Mamba's RMSNorm: variance in float32, normalised input cast back to its dtype, then
// scaled by w (not 1 + w). 1/Sqrt rather than Rsqrt: GoMLX has no gradient for Rsqrt.
func (m *Model) rmsNorm(x, w *Node) *Node {
	dtype := x.DType()
	xf := ConvertDType(x, dtypes.Float32)
	meanSq := ReduceAndKeep(Square(xf), ReduceMean, -1)
	normed := ConvertDType(Div(xf, Sqrt(AddScalar(meanSq, m.cfg.LayerNormEpsilon))), dtype)
	return Mul(ExpandLeftToRank(ConvertDType(w, dtype), normed.Rank()), normed)
}

// linear is x W^T (+ bias) for a PyTorch-layout weight [out, in], contracting x's last axis.
func linear(x, w, bias *Node) *Node {
	y := DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
	if bias != nil {
		y = Add(y, ExpandLeftToRank(bias, y.Rank()))
	}
	return y
}

func silu(x *Node) *Node { return Mul(x, Sigmoid(x)) }

// softplus is log(1 + exp(x)) written as max(x, 0) + log1p(exp(-|x|)), with log1p(u) for u in
// (0, 1] as 2 atanh(u / (2 + u)) summed as its odd power series (w = u/(2+u) <= 1/3, so seven
// terms leave a relative error near 1e-8). Only multiply-adds, one Exp and one Div: the Go backend
// vectorises those, while its Log is a scalar loop and Where with computed conditions is slow
// (this form is ~10x faster than Exp/Log/Where on [B, T, d_inner]). It needs no threshold: above
// x = 20 the log1p term is below float32 resolution (PyTorch returns x there), and for very
// negative x it is exp(x) without the cancellation of log(1 + exp(x)).
func softplus(x *Node) *Node {
	u := Exp(Neg(Abs(x)))
	w := Div(u, AddScalar(u, 2))
	w2 := Square(w)
	// Horner over w2 of sum_k 2/(2k+1) w2^k, k = 0..6.
	coef := func(k int) float64 { return 2 / float64(2*k+1) }
	p := AddScalar(MulScalar(w2, coef(6)), coef(5))
	for k := 4; k >= 0; k-- {
		p = AddScalar(Mul(p, w2), coef(k))
	}
	return Add(MaxScalar(x, 0), Mul(w, p))
}

// optional returns the parameter if the config has it, else nil.
func optional(p lm.Params, has bool, name string) *Node {
	if !has {
		return nil
	}
	return p(name)
}

// block is one residual layer: x + mixer(RMSNorm(x)). With residual_in_fp32 the residual stream
// is float32 (as Hugging Face's MambaBlock), the mixer runs in the weights' dtype. For Step it
// also returns the layer's new conv window and SSM state.
func (m *Model) block(p lm.Params, l int, x *Node, st mixerState) (out, conv, ssm *Node) {
	c := m.cfg
	wdtype := p(layerName(l, "norm.weight")).DType()
	u := m.rmsNorm(ConvertDType(x, wdtype), p(layerName(l, "norm.weight")))
	residual := x
	if c.ResidualInFP32 {
		residual = ConvertDType(x, dtypes.Float32)
	}
	y, conv, ssm := m.mixer(p, l, u, st)
	return Add(residual, ConvertDType(y, residual.DType())), conv, ssm
}

// mixerGroups is how many channel groups the mixer is split into (when d_inner divides).
// Channels are independent from in_proj to out_proj except through x_proj, so each group is its
// own chain of ops on [B, T, d_inner/groups, state] tensors: smaller working sets that stay in
// cache (measured 1.3x faster per scan on the benchmark model with 8 groups), and independent
// branches the Go backend's executor can run on different cores. Step uses the same groups for
// large chunks (stepGroupsMin), each continuing from its channels' slice of the cached conv
// window and SSM state.
const mixerGroups = 4

// stepGroupsMin is the size of a chunk's SSM states (B*T*d_inner*state elements) from which Step
// splits its mixer into mixerGroups too; smaller chunks (decoding, short prefill pieces) run as
// one group, where the op count of four groups costs more than their cache locality gains.
// Measured on Step alone (docs/mamba.md, "The Step path"): on mamba-tiny (d_inner 256) four
// groups were slower at every T up to 512 (2.1M elements, 7% there) and 4% faster at 1,024
// (4.2M); on the benchmark model (d_inner 512) 1.8x slower at T = 16, 2-5% faster at 64 to
// 1,024 (0.5M to 8.4M) and 1.24x faster at 2,048 (16.8M).
// A variable only so that tests can run the grouped Step on their small fixtures.
var stepGroupsMin = 1 << 22

// mixer is Hugging Face's MambaMixer on u [B, T, hidden].
func (m *Model) mixer(p lm.Params, l int, u *Node, st mixerState) (y, conv, ssm *Node) {
	c := m.cfg
	g := u.Graph()
	B, T := u.Shape().Dimensions[0], u.Shape().Dimensions[1]
	DI, N, R, K := c.IntermediateSize, c.StateSize, c.TimeStepRank, c.ConvKernel
	name := func(s string) string { return layerName(l, "mixer."+s) }
	G := 1
	if DI%mixerGroups == 0 && (st.ssm == nil || B*T*DI*N >= stepGroupsMin) {
		G = mixerGroups
	}
	Dg := DI / G
	// sub returns x[lo:hi] along axis (x itself for the whole range, nil for nil): the weights
	// are sliced per group, never the [B, T, ...] activations.
	sub := func(x *Node, axis, lo, hi int) *Node {
		if x == nil || (lo == 0 && hi == x.Shape().Dimensions[axis]) {
			return x
		}
		return SliceAxis(x, axis, AxisRange(lo, hi))
	}
	inW, inB := p(name("in_proj.weight")), optional(p, c.UseBias, name("in_proj.bias"))
	convW := Reshape(p(name("conv1d.weight")), DI, K)
	convB := optional(p, c.UseConvBias, name("conv1d.bias"))

	// Run masks of the convolution taps, shared by the groups.
	masks := make([]*Node, K)
	if st.run != nil {
		for shift := 1; shift < K; shift++ {
			masks[shift] = sameRun(st.run, shift)
		}
	}

	xs, zs, convs := make([]*Node, G), make([]*Node, G), make([]*Node, G)
	var ssmParams *Node // [B, T, R+2N] = sum over groups of x_g x_proj[:, g]^T
	for gi := range G {
		lo, hi := gi*Dg, (gi+1)*Dg
		// in_proj's x and z halves applied separately: slicing the weight is cheaper than
		// slicing the [B, T, 2*DI] activations.
		x := linear(u, sub(inW, 0, lo, hi), sub(inB, 0, lo, hi)) // [B, T, Dg]
		zs[gi] = linear(u, sub(inW, 0, DI+lo, DI+hi), sub(inB, 0, DI+lo, DI+hi))

		// Causal depthwise convolution as K shifted multiply-adds over the window [prefix | x].
		// Logits: the prefix is zeros and shifted inputs from another run are masked out. Step:
		// the prefix is the cached last K-1 inputs.
		var prefix *Node
		if st.conv != nil {
			prefix = TransposeAllAxes(ConvertDType(sub(st.conv, 1, lo, hi), x.DType()), 0, 2, 1) // [1, K-1, Dg]
		} else {
			prefix = Zeros(g, shapes.Make(x.DType(), B, K-1, Dg))
		}
		window := Concatenate([]*Node{prefix, x}, 1) // [B, K-1+T, Dg]
		if st.conv != nil {
			convs[gi] = ConvertDType(TransposeAllAxes(steps(window, T, 1, K-1), 0, 2, 1), st.conv.DType())
		}
		w := sub(convW, 0, lo, hi)
		var xc *Node
		for k := range K {
			// Tap k multiplies the input shift = K-1-k steps back (PyTorch conv1d is a
			// correlation over the left-padded input).
			shift := K - 1 - k
			term := Mul(steps(window, k, 1, T), Reshape(SliceAxis(w, 1, AxisElem(k)), 1, 1, Dg))
			if masks[shift] != nil {
				// A multiplicative mask: Where with a broadcast condition is much slower on the Go backend.
				term = Mul(term, ConvertDType(masks[shift], term.DType()))
			}
			if xc == nil {
				xc = term
			} else {
				xc = Add(xc, term)
			}
		}
		if convB != nil {
			xc = Add(xc, Reshape(sub(convB, 0, lo, hi), 1, 1, Dg))
		}
		xs[gi] = silu(xc)
		// Partial sums over groups are added in float32 (a no-op for float32 weights), so bf16
		// compute rounds once, as a single matmul would.
		part := ConvertDType(linear(xs[gi], sub(p(name("x_proj.weight")), 1, lo, hi), nil), dtypes.Float32)
		if ssmParams == nil {
			ssmParams = part
		} else {
			ssmParams = Add(ssmParams, part)
		}
	}
	if st.conv != nil {
		conv = concatIfMany(convs, 1)
	}

	ssmParams = ConvertDType(ssmParams, xs[0].DType())
	dtIn := SliceAxis(ssmParams, -1, AxisRange(0, R))
	Bm := ConvertDType(SliceAxis(ssmParams, -1, AxisRange(R, R+N)), dtypes.Float32)
	Cm := SliceAxis(ssmParams, -1, AxisRange(R+N, R+2*N))
	var startsBig *Node
	if st.starts != nil {
		// A run start gets a huge dt in the decay only, so exp(dt A) is exactly 0 there: a
		// finite value keeps the gradient of A free of 0*inf, and adding a [B, T, 1] column is a
		// vectorised trailing broadcast.
		startsBig = MulScalar(ConvertDType(Reshape(st.starts, B, T, 1), dtypes.Float32), 1e30)
	}
	ssms := make([]*Node, G)
	for gi := range G {
		lo, hi := gi*Dg, (gi+1)*Dg
		x := xs[gi]
		dt := softplus(linear(dtIn, sub(p(name("dt_proj.weight")), 0, lo, hi), sub(p(name("dt_proj.bias")), 0, lo, hi)))
		dt = ConvertDType(dt, dtypes.Float32) // [B, T, Dg]
		A := Neg(Exp(ConvertDType(sub(p(name("A_log")), 0, lo, hi), dtypes.Float32)))

		// s_t = a_t s_{t-1} + b_t with a_t = exp(dt_t A) (zero where a run starts) and
		// b_t = dt_t x_t B_t, all [B, T, Dg, N] in float32; y_t = C_t s_t.
		dtx := Mul(dt, ConvertDType(x, dtypes.Float32))
		var out *Node
		if st.ssm == nil {
			// Logits, from zero state.
			dtDecay := dt
			if startsBig != nil {
				dtDecay = Add(dt, startsBig)
			}
			out = ScanOutput(dtDecay, dtx, Bm, Cm, A) // [B, T, Dg]
		} else {
			// Step: continue from the group's slice of the cached state [1, Dg, N] and return
			// the last one (ScanOutputFrom casts the states to Cm's dtype, the compute dtype,
			// before contracting with C, as Hugging Face).
			out, ssms[gi] = ScanOutputFrom(dt, dtx, Bm, Cm, A, ConvertDType(sub(st.ssm, 1, lo, hi), dtypes.Float32))
		}
		out = Add(out, Mul(x, Reshape(sub(p(name("D")), 0, lo, hi), 1, 1, Dg)))
		out = Mul(out, silu(zs[gi]))
		part := ConvertDType(linear(out, sub(p(name("out_proj.weight")), 1, lo, hi), nil), dtypes.Float32)
		if y == nil {
			y = part
		} else {
			y = Add(y, part)
		}
	}
	y = ConvertDType(y, u.DType())
	if c.UseBias {
		y = Add(y, ExpandLeftToRank(p(name("out_proj.bias")), y.Rank()))
	}
	if st.ssm != nil {
		ssm = concatIfMany(ssms, 1)
	}
	return y, conv, ssm
}

func concatIfMany(xs []*Node, axis int) *Node {
	if len(xs) == 1 {
		return xs[0]
	}
	return Concatenate(xs, axis)
}

// sameRun is [B, T, 1] true where token t and token t-shift belong to the same run (false for
// t < shift).
func sameRun(run *Node, shift int) *Node {
	B, T := run.Shape().Dimensions[0], run.Shape().Dimensions[1]
	if shift >= T {
		return Reshape(BroadcastToDims(Const(run.Graph(), false), B, T), B, T, 1)
	}
	pad := BroadcastToDims(Const(run.Graph(), int32(-1)), B, shift)
	shifted := Concatenate([]*Node{pad, SliceAxis(run, 1, AxisRange(0, T-shift))}, 1)
	return Reshape(Equal(run, shifted), B, T, 1)
}
