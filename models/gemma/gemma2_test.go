package gemma_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/gemma"
	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// withConfig returns the fixture's architecture with its config changed by edit.
func withConfig(t testing.TB, f *fixture, edit func(c *gemma.Config2)) *gemma.Model2 {
	t.Helper()
	cfg := f.model().Config()
	edit(&cfg)
	m, err := gemma.New2(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// With every layer sliding, a token at position p sees nothing at positions <= p - layers *
// (window - 1): changing the first token leaves those logits exactly unchanged, in Logits and in
// cached decoding, while it changes the positions that still reach it.
func TestGemma23SlidingWindowBoundsWhatATokenSees(t *testing.T) {
	for _, name := range []string{"gemma2_sharded", "gemma3_layer_types"} {
		t.Run(name, func(t *testing.T) {
			f := fixtureNamed(t, name)
			layers, window := f.model().Config().NumHiddenLayers, *f.model().Config().SlidingWindow
			f.Arch = withConfig(t, f, func(c *gemma.Config2) {
				c.LayerTypes = make([]string, layers)
				for i := range c.LayerTypes {
					c.LayerTypes[i] = gemma.SlidingAttention
				}
			})
			seq := f.Golden.Sequences[1]
			other := append([]int32{seq[0] + 1}, seq[1:]...)
			reach := layers * (window - 1) // position p depends on positions >= p - reach
			var b batch
			b.row(len(seq), seq)
			b.row(len(seq), other)
			got := f.logits(t, dtypes.Float32, b)
			stepped := [][][]float32{nil, nil}
			for r, s := range [][]int32{seq, other} {
				st := newStepper(t, f, len(s))
				for i := range s {
					stepped[r] = append(stepped[r], st.step(t, s[i:i+1], i)...)
				}
			}
			for p := range seq {
				for _, pair := range [][2][]float32{{got[0][p], got[1][p]}, {stepped[0][p], stepped[1][p]}} {
					equal := true
					for j := range pair[0] {
						if pair[0][j] != pair[1][j] {
							equal = false
						}
					}
					if p > reach && !equal {
						t.Errorf("position %d (> %d) depends on position 0", p, reach)
					}
					if p <= reach && equal {
						t.Errorf("position %d (<= %d) does not depend on position 0", p, reach)
					}
				}
			}
		})
	}
}

// Specs name exactly the checkpoint's tensors (plus the tied-head alias), with the Hugging Face
// names the reference wrote.
func TestGemma23SpecsMatchCheckpoints(t *testing.T) {
	for _, spec := range fixtures23 {
		lmtest.CheckSpecsNameTheCheckpoint(t, lmtest.MustLoad(t, spec), "lm_head.weight")
	}
}

// The fixtures discriminate: each feature switched off or changed (sliding windows, soft caps,
// the attention scale, Gemma 3's local RoPE base, rope_scaling, q/k norms, layer_types) misses
// the reference by far more than the tolerance, so the golden tests above check it.
func TestGemma23FixturesDiscriminate(t *testing.T) {
	allFull := func(c *gemma.Config2) {
		c.LayerTypes = make([]string, c.NumHiddenLayers)
		for i := range c.LayerTypes {
			c.LayerTypes[i] = gemma.FullAttention
		}
	}
	cases := []struct {
		fixture, change string
		edit            func(c *gemma.Config2)
	}{
		{"gemma2_sharded", "no sliding window", allFull},
		{"gemma2_sharded", "no attention soft cap", func(c *gemma.Config2) { c.AttnLogitSoftcapping = nil }},
		{"gemma2_sharded", "no final soft cap", func(c *gemma.Config2) { c.FinalLogitSoftcapping = nil }},
		{"gemma2_sharded", "scale by head_dim", func(c *gemma.Config2) { c.QueryPreAttnScalar = float64(c.HeadDim) }},
		{"gemma2_sharded", "odd layers sliding", func(c *gemma.Config2) {
			c.LayerTypes = []string{gemma.FullAttention, gemma.SlidingAttention, gemma.FullAttention}
		}},
		{"gemma2_bf16", "no sliding window", allFull},
		{"gemma2_bf16", "final soft cap null (not the default 30)", func(c *gemma.Config2) { c.FinalLogitSoftcapping = nil }},
		{"gemma3_pattern", "no sliding window", allFull},
		{"gemma3_pattern", "global RoPE base on sliding layers", func(c *gemma.Config2) { c.RopeLocalBaseFreq = c.RopeTheta }},
		{"gemma3_pattern", "no rope_scaling", func(c *gemma.Config2) { c.RopeScaling = nil }},
		{"gemma3_layer_types", "sliding_window_pattern instead of layer_types", func(c *gemma.Config2) { c.LayerTypes = nil }},
		{"gemma3_layer_types", "no final soft cap", func(c *gemma.Config2) { c.FinalLogitSoftcapping = nil }},
	}
	for _, c := range cases {
		f := fixtureNamed(t, c.fixture)
		lmtest.CheckMissesReference(t, f.Loaded, withConfig(t, f, c.edit), f.ParamTensors(t, dtypes.Float32), c.change)
	}
	// Gemma 3 with unit q/k norms ((1 + w) with w = 0).
	f := fixtureNamed(t, "gemma3_pattern")
	params := f.ParamTensors(t, dtypes.Float32)
	for i, s := range f.model().Specs() {
		if strings.HasSuffix(s.Name, "q_norm.weight") || strings.HasSuffix(s.Name, "k_norm.weight") {
			params[i] = tensors.FromFlatDataAndDimensions(make([]float32, s.Shape[0]), s.Shape...)
		}
	}
	lmtest.CheckMissesReference(t, f.Loaded, f.model(), params, "unit q/k norms")
}

// Real configs (as published on the Hugging Face hub) parse, their parameter counts are the
// published ones and their layers slide as Transformers has them.
var realConfigs23 = map[string]struct {
	config  string
	params  int
	globals []int // layers with full attention
}{
	// google/gemma-2-2b: 2,614,341,888 parameters; even layers slide.
	"gemma-2-2b": {`{"architectures":["Gemma2ForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
"attn_logit_softcapping":50.0,"bos_token_id":2,"cache_implementation":"hybrid","eos_token_id":1,
"final_logit_softcapping":30.0,"head_dim":256,"hidden_act":"gelu_pytorch_tanh","hidden_activation":"gelu_pytorch_tanh",
"hidden_size":2304,"initializer_range":0.02,"intermediate_size":9216,"max_position_embeddings":8192,
"model_type":"gemma2","num_attention_heads":8,"num_hidden_layers":26,"num_key_value_heads":4,"pad_token_id":0,
"query_pre_attn_scalar":256,"rms_norm_eps":1e-06,"rope_theta":10000.0,"sliding_window":4096,
"torch_dtype":"float32","transformers_version":"4.42.4","use_cache":true,"vocab_size":256000}`,
		2614341888, []int{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25}},
	// google/gemma-3-1b-it: 999,885,952 parameters; every sixth layer is global.
	"gemma-3-1b-it": {`{"architectures":["Gemma3ForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
"attn_logit_softcapping":null,"bos_token_id":2,"cache_implementation":"hybrid","eos_token_id":[1,106],
"final_logit_softcapping":null,"head_dim":256,"hidden_activation":"gelu_pytorch_tanh","hidden_size":1152,
"initializer_range":0.02,"intermediate_size":6912,"max_position_embeddings":32768,"model_type":"gemma3_text",
"num_attention_heads":4,"num_hidden_layers":26,"num_key_value_heads":1,"pad_token_id":0,"query_pre_attn_scalar":256,
"rms_norm_eps":1e-06,"rope_local_base_freq":10000,"rope_scaling":null,"rope_theta":1000000,"sliding_window":512,
"sliding_window_pattern":6,"torch_dtype":"bfloat16","transformers_version":"4.50.0.dev0","use_cache":true,
"vocab_size":262144}`, 999885952, []int{5, 11, 17, 23}},
}

func TestGemma23RealConfigs(t *testing.T) {
	for name, rc := range realConfigs23 {
		arch, err := lm.NewArchitecture(json.RawMessage(rc.config))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m := arch.(*gemma.Model2)
		if n := m.NumParams(); n != rc.params {
			t.Errorf("%s: NumParams = %d, want %d", name, n, rc.params)
		}
		var globals []int
		for l, s := range m.Config().Sliding() {
			if !s {
				globals = append(globals, l)
			}
		}
		if !equalInts(globals, rc.globals) {
			t.Errorf("%s: global layers %v, want %v", name, globals, rc.globals)
		}
		cs := m.CacheShapes(1024, dtypes.BFloat16)
		c := m.Config()
		if len(cs) != 2*c.NumHiddenLayers || cs[0].Dimensions[1] != c.NumKeyValueHeads || cs[0].Dimensions[3] != c.HeadDim {
			t.Errorf("%s: CacheShapes %+v", name, cs[0])
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const validGemma2 = `{"model_type":"gemma2","vocab_size":1000,"hidden_size":64,"intermediate_size":128,
"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"sliding_window":32,
"query_pre_attn_scalar":16,"attn_logit_softcapping":50.0,"final_logit_softcapping":30.0}`

const validGemma3 = `{"model_type":"gemma3_text","vocab_size":1000,"hidden_size":64,"intermediate_size":128,
"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"sliding_window":32,
"sliding_window_pattern":2,"rope_theta":1000000.0,"rope_local_base_freq":10000.0,
"rope_scaling":{"rope_type":"linear","factor":8.0},"attn_logit_softcapping":null,"final_logit_softcapping":null}`

// What is not implemented is refused, with an error naming the config.json field.
func TestGemma23ConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ base, edit, field string }{
		{validGemma2, `"vocab_size":0`, "vocab_size"},
		{validGemma2, `"hidden_size":-1`, "hidden_size"},
		{validGemma2, `"num_key_value_heads":3`, "num_key_value_heads"},
		{validGemma2, `"head_dim":7`, "head_dim"},
		{validGemma2, `"head_dim":null`, "head_dim"}, // no default size
		{validGemma2, `"num_key_value_heads":null`, "num_key_value_heads"},
		{validGemma2, `"rms_norm_eps":-1`, "rms_norm_eps"},
		{validGemma2, `"rope_theta":0.5`, "rope_theta"},
		{validGemma2, `"vocab_size":"many"`, "vocab_size"},
		{validGemma2, `"num_hidden_layers":1000000000000`, "num_hidden_layers"},
		{validGemma2, `"query_pre_attn_scalar":0`, "query_pre_attn_scalar"},
		{validGemma2, `"attn_logit_softcapping":0`, "attn_logit_softcapping"},
		{validGemma2, `"final_logit_softcapping":-30`, "final_logit_softcapping"},
		{validGemma2, `"sliding_window":0`, "sliding_window"},
		{validGemma2, `"sliding_window":null`, "sliding_window"},
		{validGemma2, `"layer_types":["sliding_attention","full_attention"]`, "layer_types"},
		{validGemma2, `"layer_types":["sliding_attention","full_attention","chunked_attention","full_attention"]`, "layer_types[2]"},
		{validGemma2, `"hidden_activation":"gelu"`, "hidden_activation"},
		{validGemma2, `"attention_bias":true`, "attention_bias"},
		{validGemma2, `"tie_word_embeddings":false`, "tie_word_embeddings"},
		{validGemma2, `"rope_scaling":{"rope_type":"linear","factor":2.0}`, "rope_scaling"},
		// Transformers v5's rope_parameters: refused when unsupported or when it disagrees with
		// the v4 fields beside it.
		{validGemma2, `"rope_parameters":{"rope_type":"linear","factor":2.0}`, "rope_parameters.rope_type"},
		{validGemma2, `"rope_theta":10000.0,"rope_parameters":{"rope_type":"default","rope_theta":500.0}`, "rope_theta=10000 and rope_parameters.rope_theta=500"},
		{validGemma2, `"rope_parameters":{"full_attention":{"rope_type":"default"}}`, "rope_parameters keyed"},
		{validGemma2, `"rope_parameters":[1]`, "rope_parameters"},
		{validGemma3, `"rope_parameters":{"rope_type":"default","rope_theta":10000.0}`, "rope_parameters must be keyed"},
		{validGemma3, `"rope_parameters":{"full_attention":{"rope_type":"yarn","factor":8.0}}`, "rope_parameters.full_attention.rope_type"},
		{validGemma3, `"rope_parameters":{"full_attention":{"rope_type":"linear","factor":0.5}}`, "rope_parameters.full_attention.factor"},
		{validGemma3, `"rope_parameters":{"sliding_attention":{"rope_type":"linear","factor":2.0}}`, "rope_parameters.sliding_attention.rope_type"},
		{validGemma3, `"rope_parameters":{"full_attention":{"rope_type":"linear","factor":8.0},"chunked_attention":{"rope_type":"default"}}`, "rope_parameters.chunked_attention"},
		{validGemma3, `"rope_parameters":{"full_attention":{"rope_type":"linear","factor":4.0}}`, "rope_scaling (rope_type=\"linear\" factor=8) and rope_parameters.full_attention"},
		{validGemma3, `"rope_parameters":{"full_attention":{"rope_type":"linear","factor":8.0,"rope_theta":1000.0}}`, "rope_theta=1e+06 and rope_parameters.full_attention.rope_theta=1000"},
		{validGemma3, `"rope_parameters":{"sliding_attention":{"rope_type":"default","rope_theta":10.0}}`, "rope_local_base_freq=10000 and rope_parameters.sliding_attention.rope_theta=10"},
		{validGemma3, `"attn_logit_softcapping":50.0`, "attn_logit_softcapping"},
		{validGemma3, `"sliding_window_pattern":0`, "sliding_window_pattern"},
		{validGemma3, `"rope_local_base_freq":1`, "rope_local_base_freq"},
		{validGemma3, `"rope_scaling":{"rope_type":"yarn","factor":8.0}`, "rope_scaling.rope_type"},
		{validGemma3, `"rope_scaling":{"rope_type":"linear","factor":0.5}`, "rope_scaling.factor"},
		{validGemma3, `"use_bidirectional_attention":true`, "use_bidirectional_attention"},
		{validGemma3, `"model_type":"gemma3"`, "model_type"}, // the multimodal wrapper is not registered
	}
	for _, c := range cases {
		_, err := lm.NewArchitecture(goldentest.Edited(t, c.base, c.edit))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %v does not name %s", c.edit, err, c.field)
		}
	}
	if _, err := gemma.ParseConfig2(goldentest.Edited(t, validGemma3, `"model_type":"gemma"`)); err == nil || !strings.Contains(err.Error(), "model_type") {
		t.Errorf("ParseConfig2 of a v1 config: %v", err)
	}
	// Accepted spellings: the older "type" key, "default", gelu_new (the same tanh formula).
	for _, edit := range []string{`"rope_scaling":{"type":"linear","factor":2.0}`, `"rope_scaling":{"rope_type":"default"}`,
		`"hidden_activation":"gelu_new"`, `"layer_types":["full_attention","full_attention","sliding_attention","sliding_attention"]`} {
		if _, err := lm.NewArchitecture(goldentest.Edited(t, validGemma3, edit)); err != nil {
			t.Errorf("%s: %v", edit, err)
		}
	}
}

// Absent fields take the Transformers config classes' defaults; an explicit null soft cap is no
// cap (Gemma 2's defaults are 50 and 30, Gemma 3's none).
func TestGemma23Defaults(t *testing.T) {
	cfg, err := gemma.ParseConfig2(goldentest.Without(t, validGemma2, "attn_logit_softcapping", "final_logit_softcapping",
		"query_pre_attn_scalar", "sliding_window"))
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.AttnLogitSoftcapping != 50 || *cfg.FinalLogitSoftcapping != 30 || cfg.QueryPreAttnScalar != 256 ||
		*cfg.SlidingWindow != 4096 || cfg.RopeTheta != 10000 || cfg.RMSNormEps != 1e-6 || cfg.MaxPositionEmbeddings != 8192 ||
		cfg.HiddenActivation != "gelu_pytorch_tanh" {
		t.Errorf("gemma2 defaults not applied: %+v", cfg)
	}
	cfg, err = gemma.ParseConfig2(goldentest.Edited(t, validGemma2, `"attn_logit_softcapping":null,"final_logit_softcapping":null`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AttnLogitSoftcapping != nil || cfg.FinalLogitSoftcapping != nil {
		t.Errorf("explicit null soft caps read as %v, %v", cfg.AttnLogitSoftcapping, cfg.FinalLogitSoftcapping)
	}
	cfg, err = gemma.ParseConfig2(goldentest.Without(t, validGemma3, "attn_logit_softcapping", "final_logit_softcapping",
		"sliding_window_pattern", "rope_theta", "rope_local_base_freq", "rope_scaling"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AttnLogitSoftcapping != nil || cfg.FinalLogitSoftcapping != nil || cfg.SlidingWindowPattern != 6 ||
		cfg.RopeTheta != 1e6 || cfg.RopeLocalBaseFreq != 10000 || cfg.MaxPositionEmbeddings != 131072 {
		t.Errorf("gemma3_text defaults not applied: %+v", cfg)
	}
	// Gemma 2 slides on even layers, Gemma 3 on all but every pattern-th; layer_types wins.
	for _, c := range []struct {
		raw  []byte
		want []bool
	}{
		{[]byte(validGemma2), []bool{true, false, true, false}},
		{[]byte(validGemma3), []bool{true, false, true, false}},
		{goldentest.Edited(t, validGemma3, `"sliding_window_pattern":3`), []bool{true, true, false, true}},
		{goldentest.Edited(t, validGemma3, `"sliding_window_pattern":1`), []bool{false, false, false, false}},
		{goldentest.Edited(t, validGemma2, `"layer_types":["full_attention","sliding_attention","sliding_attention","full_attention"]`),
			[]bool{false, true, true, false}},
	} {
		cfg, err := gemma.ParseConfig2(c.raw)
		if err != nil {
			t.Fatal(err)
		}
		got := cfg.Sliding()
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: sliding %v, want %v", c.raw, got, c.want)
				break
			}
		}
	}
}

// Which tensors each model type has: Gemma 3 adds q/k norms; both have four norms per layer and
// no lm_head.weight spec (the tied head is an alias of the embedding).
func TestGemma23SpecsPerModelType(t *testing.T) {
	for _, c := range []struct {
		raw    string
		qkNorm bool
	}{{validGemma2, false}, {validGemma3, true}} {
		arch, err := lm.NewArchitecture(json.RawMessage(c.raw))
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, s := range arch.Specs() {
			names[s.Name] = true
		}
		for _, n := range []string{"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"} {
			if !names["model.layers.3."+n+".weight"] {
				t.Errorf("%s: no %s", arch.Family(), n)
			}
		}
		if names["model.layers.0.self_attn.q_norm.weight"] != c.qkNorm || names["model.layers.0.self_attn.k_norm.weight"] != c.qkNorm {
			t.Errorf("%s: q/k norm specs present=%v, want %v", arch.Family(), names["model.layers.0.self_attn.q_norm.weight"], c.qkNorm)
		}
		if names["lm_head.weight"] {
			t.Errorf("%s: tied model has an lm_head.weight spec", arch.Family())
		}
	}
}

// Arbitrary config.json bytes never panic; an accepted config yields a usable architecture.
func FuzzParseConfig2(f *testing.F) {
	f.Add([]byte(validGemma2))
	f.Add([]byte(validGemma3))
	for _, rc := range realConfigs23 {
		f.Add([]byte(rc.config))
	}
	f.Add([]byte(`{"model_type":"gemma3_text","vocab_size":10,"hidden_size":8,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":4,"layer_types":["full_attention"]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := gemma.ParseConfig2(raw)
		if err != nil {
			if !strings.Contains(err.Error(), "config.json") {
				t.Fatalf("error does not name config.json: %v", err)
			}
			return
		}
		m, err := gemma.New2(cfg)
		if err != nil {
			t.Fatalf("ParseConfig2 accepted a config New2 rejects: %v", err)
		}
		if len(m.Specs()) < 2+11*cfg.NumHiddenLayers || m.NumParams() <= 0 || len(cfg.Sliding()) != cfg.NumHiddenLayers {
			t.Fatalf("specs %d, params %d", len(m.Specs()), m.NumParams())
		}
	})
}

// v5 rewrites a Gemma 2 or Gemma 3 text config.json in Transformers v5's form: rope_theta,
// rope_local_base_freq and rope_scaling moved into rope_parameters (one object for gemma2, one
// per layer kind for gemma3_text). Fields the config omits stay omitted (their defaults apply).
func v5(t testing.TB, raw []byte) []byte {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	full := map[string]any{"rope_type": "default"}
	if s, ok := cfg["rope_scaling"].(map[string]any); ok {
		for k, v := range s {
			if k == "type" {
				k = "rope_type"
			}
			full[k] = v
		}
	}
	if v, ok := cfg["rope_theta"]; ok {
		full["rope_theta"] = v
	}
	params := any(full)
	if cfg["model_type"] == gemma.ModelType3 {
		sliding := map[string]any{"rope_type": "default"}
		if v, ok := cfg["rope_local_base_freq"]; ok {
			sliding["rope_theta"] = v
		}
		params = map[string]any{gemma.FullAttention: full, gemma.SlidingAttention: sliding}
	}
	for _, k := range []string{"rope_theta", "rope_local_base_freq", "rope_scaling"} {
		delete(cfg, k)
	}
	cfg["rope_parameters"] = params
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A fixture's config in Transformers v5's form (rope_parameters) is the same model:
// bit-identical logits on the golden sequences (Gemma 3's fixtures have different global and
// local bases and linear scaling, so a base or factor read from the wrong entry would show).
func TestGemma23RopeParametersSameLogits(t *testing.T) {
	for _, spec := range fixtures23 {
		t.Run(spec.Name(), func(t *testing.T) {
			f := loadFixture(t, spec)
			arch, err := lm.NewArchitecture(v5(t, f.Config))
			if err != nil {
				t.Fatal(err)
			}
			goldentest.SameLogits(t, f.Arch, arch, f.ParamTensors(t, dtypes.Float32), f.Golden.Sequences)
		})
	}
}

// Sliding layers' caches are rings of sliding_window slots (at most maxLength); global layers'
// hold maxLength positions.
func TestGemma23SlidingCacheIsTheWindow(t *testing.T) {
	for _, name := range []string{"gemma2_sharded", "gemma3_pattern"} {
		m := fixtureNamed(t, name).model()
		window := *m.Config().SlidingWindow
		for _, maxLen := range []int{2, 100} {
			cs := m.CacheShapes(maxLen, dtypes.Float32)
			for l, sliding := range m.Config().Sliding() {
				want := maxLen
				if sliding {
					want = min(window, maxLen)
				}
				for _, c := range cs[2*l : 2*l+2] {
					if c.Dimensions[2] != want {
						t.Errorf("%s maxLength %d: %s has %d slots, want %d", name, maxLen, c.Name, c.Dimensions[2], want)
					}
				}
			}
		}
	}
}

// Decoding far past every sliding window (the rings wrap many times), one token at a time and in
// chunks longer than the window, gives the logits of the full forward pass and the same greedy
// choices.
func TestGemma23StepPastTheWindow(t *testing.T) {
	for _, name := range []string{"gemma2_sharded", "gemma3_pattern", "gemma3_layer_types"} {
		t.Run(name, func(t *testing.T) {
			f := fixtureNamed(t, name)
			seq := make([]int32, 45)
			for i := range seq {
				seq[i] = int32((i*7 + 3) % f.model().VocabSize())
			}
			var b batch
			b.row(len(seq), seq)
			full := f.logits(t, dtypes.Float32, b)[0]
			for _, chunk := range []int{1, 8} {
				st := newStepper(t, f, len(seq))
				var got [][]float32
				for start := 0; start < len(seq); start += chunk {
					got = append(got, st.step(t, seq[start:min(start+chunk, len(seq))], start)...)
				}
				for p := range seq {
					best, bestFull := 0, 0
					for j := range got[p] {
						if math.Abs(float64(got[p][j]-full[p][j])) > 1e-4 {
							t.Fatalf("chunk %d position %d logit %d: Step %g, Logits %g", chunk, p, j, got[p][j], full[p][j])
						}
						if got[p][j] > got[p][best] {
							best = j
						}
						if full[p][j] > full[p][bestFull] {
							bestFull = j
						}
					}
					if best != bestFull {
						t.Errorf("chunk %d position %d: greedy Step %d, Logits %d", chunk, p, best, bestFull)
					}
				}
			}
		})
	}
}
