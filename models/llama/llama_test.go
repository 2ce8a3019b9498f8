package llama

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// Specs name exactly the checkpoint's tensors (plus the tied-head alias), with the Hugging Face
// names the reference wrote: what a saved model must contain for Transformers to load it.
func TestSpecsMatchCheckpoints(t *testing.T) {
	for _, spec := range fixtures {
		f := loadFixture(t, spec)
		var tiedHead []string
		if f.model().cfg.TieWordEmbeddings {
			tiedHead = append(tiedHead, headName)
		}
		lmtest.CheckSpecsNameTheCheckpoint(t, f.Loaded, tiedHead...)
	}
}

// The fixtures discriminate: the same weights run with plain RoPE instead of the configured
// scaling, or without Qwen3's q/k norms' effect (norm weights replaced by ones), miss the
// reference by far more than the tolerance, so the golden tests above check those features.
func TestFixturesDiscriminate(t *testing.T) {
	for _, name := range []string{"llama3_gqa", "llama_bf16"} {
		f := fixtureNamed(t, name)
		cfg := f.model().cfg
		cfg.RopeScaling = nil
		plain, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		lmtest.CheckMissesReference(t, f.Loaded, plain, f.ParamTensors(t, dtypes.Float32), "plain RoPE (no rope_scaling)")
	}
	f := fixtureNamed(t, "qwen3_qknorm")
	params := f.ParamTensors(t, dtypes.Float32)
	for i, s := range f.model().Specs() {
		if strings.HasSuffix(s.Name, "q_norm.weight") || strings.HasSuffix(s.Name, "k_norm.weight") {
			ones := make([]float32, s.Shape[0])
			for j := range ones {
				ones[j] = 1
			}
			params[i] = tensors.FromFlatDataAndDimensions(ones, s.Shape...)
		}
	}
	lmtest.CheckMissesReference(t, f.Loaded, f.model(), params, "unit q/k norm weights")
}

// Real configs (as published on the Hugging Face hub) parse, and their parameter counts are the
// published ones.
var realConfigs = map[string]struct {
	config string
	params int
}{
	// meta-llama/Llama-3.2-1B: 1,235,814,400 parameters, tied head, llama3 rope scaling.
	"Llama-3.2-1B": {`{"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
"bos_token_id":128000,"eos_token_id":128001,"head_dim":64,"hidden_act":"silu","hidden_size":2048,
"initializer_range":0.02,"intermediate_size":8192,"max_position_embeddings":131072,"mlp_bias":false,
"model_type":"llama","num_attention_heads":32,"num_hidden_layers":16,"num_key_value_heads":8,
"pretraining_tp":1,"rms_norm_eps":1e-05,"rope_scaling":{"factor":32.0,"high_freq_factor":4.0,
"low_freq_factor":1.0,"original_max_position_embeddings":8192,"rope_type":"llama3"},
"rope_theta":500000.0,"tie_word_embeddings":true,"torch_dtype":"bfloat16","use_cache":true,"vocab_size":128256}`, 1235814400},
	// Qwen/Qwen2.5-0.5B: 494,032,768 parameters, q/k/v biases, tied head.
	"Qwen2.5-0.5B": {`{"architectures":["Qwen2ForCausalLM"],"attention_dropout":0.0,"bos_token_id":151643,
"eos_token_id":151643,"hidden_act":"silu","hidden_size":896,"initializer_range":0.02,"intermediate_size":4864,
"max_position_embeddings":32768,"max_window_layers":24,"model_type":"qwen2","num_attention_heads":14,
"num_hidden_layers":24,"num_key_value_heads":2,"rms_norm_eps":1e-06,"rope_theta":1000000.0,
"sliding_window":32768,"tie_word_embeddings":true,"torch_dtype":"bfloat16","use_cache":true,
"use_sliding_window":false,"vocab_size":151936}`, 494032768},
	// Qwen/Qwen3-0.6B: 596,049,920 parameters, q/k norms, head_dim 128 != 1024/16, tied head.
	"Qwen3-0.6B": {`{"architectures":["Qwen3ForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
"bos_token_id":151643,"eos_token_id":151645,"head_dim":128,"hidden_act":"silu","hidden_size":1024,
"initializer_range":0.02,"intermediate_size":3072,"max_position_embeddings":40960,"max_window_layers":28,
"model_type":"qwen3","num_attention_heads":16,"num_hidden_layers":28,"num_key_value_heads":8,
"rms_norm_eps":1e-06,"rope_scaling":null,"rope_theta":1000000,"sliding_window":null,
"tie_word_embeddings":true,"torch_dtype":"bfloat16","use_cache":true,"use_sliding_window":false,
"vocab_size":151936}`, 596049920},
}

func TestRealConfigs(t *testing.T) {
	for name, rc := range realConfigs {
		arch, err := lm.NewArchitecture(json.RawMessage(rc.config))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m := arch.(*Model)
		if n := m.NumParams(); n != rc.params {
			t.Errorf("%s: NumParams = %d, want %d", name, n, rc.params)
		}
		cs := m.CacheShapes(1024, dtypes.BFloat16)
		c := m.Config()
		if len(cs) != 2*c.NumHiddenLayers || cs[0].Dimensions[1] != c.NumKeyValueHeads || cs[0].Dimensions[3] != c.HeadDim {
			t.Errorf("%s: CacheShapes %+v", name, cs[0])
		}
		for _, s := range m.Specs() {
			if s.Name == headName {
				t.Errorf("%s: tied model has an lm_head.weight spec", name)
			}
		}
	}
}

// Llama 3.1's RoPE frequencies (rope_theta 500000, head_dim 128, llama3 scaling with factor 8,
// low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192), against
// Transformers' _compute_llama3_parameters run in PyTorch (float32): kept below wave length
// 2048, divided by 8 above 8192, blended in between (indices 29-34).
func TestLlama3InvFreq(t *testing.T) {
	cfg := Config{ModelType: ModelTypeLlama, HeadDim: 128, RopeTheta: 500000, RopeScaling: &RopeScaling{
		RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}}
	inv, err := cfg.invFreq()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]float64{
		0: 1.0, 20: 0.016560440883040428, 28: 0.0032114461064338684, 29: 0.0021665706299245358,
		31: 0.0008567514596506953, 34: 0.0001785077911335975, 35: 9.556212171446532e-05,
		40: 3.428102354519069e-05, 63: 3.068925877869333e-07,
	}
	for i, w := range want {
		if math.Abs(inv[i]-w) > 1e-6*w { // PyTorch computes in float32
			t.Errorf("inv_freq[%d] = %.10g, Transformers %.10g", i, inv[i], w)
		}
	}
	cfg.RopeScaling = &RopeScaling{Type: "linear", Factor: 4}
	lin, _ := cfg.invFreq()
	if math.Abs(lin[1]-math.Pow(500000, -2.0/128)/4) > 1e-15 {
		t.Errorf("linear inv_freq[1] = %g", lin[1])
	}
}

const validLlama = `{"model_type":"llama","vocab_size":1000,"hidden_size":64,"intermediate_size":128,
"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5,
"rope_theta":500000.0,"max_position_embeddings":4096,"hidden_act":"silu",
"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":1024}}`

// What is not implemented is refused, with an error naming the config.json field.
func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ base, edit, field string }{
		{validLlama, `"vocab_size":0`, "vocab_size"},
		{validLlama, `"hidden_size":-1`, "hidden_size"},
		{validLlama, `"intermediate_size":0`, "intermediate_size"},
		{validLlama, `"num_hidden_layers":0`, "num_hidden_layers"},
		{validLlama, `"num_key_value_heads":3`, "num_key_value_heads"},
		{validLlama, `"head_dim":7`, "head_dim"},
		{validLlama, `"hidden_size":66,"head_dim":null`, "head_dim"}, // 66/4 is no integer
		{validLlama, `"rms_norm_eps":-1`, "rms_norm_eps"},
		{validLlama, `"rope_theta":0.5`, "rope_theta"},
		{validLlama, `"hidden_act":"gelu"`, "hidden_act"},
		{validLlama, `"vocab_size":"many"`, "vocab_size"},
		{validLlama, `"num_hidden_layers":1000000000000`, "num_hidden_layers"},
		{validLlama, `"head_dim":4611686018427387904`, "num_hidden_layers"}, // (heads+kv)*head_dim overflows int64
		{validLlama, `"partial_rotary_factor":0.5`, "partial_rotary_factor"},
		{validLlama, `"rope_scaling":{"rope_type":"dynamic","factor":2.0}`, "rope_scaling.rope_type"},
		{validLlama, `"rope_scaling":{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32768}`, "rope_scaling.rope_type"},
		{validLlama, `"rope_scaling":{"type":"longrope","factor":4.0}`, "rope_scaling.rope_type"},
		{validLlama, `"rope_scaling":{"rope_type":"linear","factor":0.5}`, "rope_scaling.factor"},
		{validLlama, `"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":4.0,"high_freq_factor":1.0,"original_max_position_embeddings":8192}`, "rope_scaling.low_freq_factor"},
		{validLlama, `"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0}`, "rope_scaling.original_max_position_embeddings"},
		{validLlama, `"rope_scaling":{"rope_type":"llama3","low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}`, "rope_scaling.factor"},
		{validLlama, `"rope_scaling":"linear"`, "rope_scaling"},
		// Transformers v5's rope_parameters beside the v4 fields, disagreeing; or unsupported.
		{validLlama, `"rope_parameters":{"rope_type":"default","rope_theta":500000.0}`, "rope_scaling (rope_type=\"llama3\""},
		{validLlama, `"rope_parameters":{"rope_type":"default","rope_theta":500000.0}`, "rope_parameters (rope_type=\"default\""},
		{validLlama, `"rope_scaling":null,"rope_parameters":{"rope_type":"default","rope_theta":10000.0}`, "rope_theta=500000 and rope_parameters.rope_theta=10000"},
		{validLlama, `"rope_scaling":null,"rope_parameters":{"rope_type":"yarn","factor":4.0,"rope_theta":500000.0}`, "rope_parameters.rope_type"},
		{validLlama, `"rope_scaling":null,"rope_parameters":{"rope_type":"linear","factor":0.5}`, "rope_parameters.factor"},
		{validLlama, `"rope_scaling":null,"rope_parameters":"default"`, "rope_parameters"},
		{validLlama, `"model_type":"qwen2","use_sliding_window":true`, "use_sliding_window"},
		{validLlama, `"model_type":"qwen3","use_sliding_window":true`, "use_sliding_window"},
		{validLlama, `"model_type":"qwen3","layer_types":["full_attention","sliding_attention"]`, "layer_types"},
		{validLlama, `"model_type":"qwen2","mlp_bias":true`, "mlp_bias"},
		{validLlama, `"model_type":"qwen2","num_key_value_heads":null`, "num_key_value_heads"}, // Qwen's default (32) is not heads
	}
	for _, c := range cases {
		_, err := lm.NewArchitecture(goldentest.Edited(t, c.base, c.edit))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %v does not name %s", c.edit, err, c.field)
		}
	}
	// Missing optional fields take the Transformers config classes' defaults.
	cfg, err := ParseConfig(json.RawMessage(`{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":4,
		"num_hidden_layers":1,"num_attention_heads":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NumKeyValueHeads != 2 || cfg.HeadDim != 4 || cfg.RMSNormEps != 1e-6 || cfg.RopeTheta != 10000 ||
		cfg.MaxPositionEmbeddings != 2048 || cfg.TieWordEmbeddings || cfg.HiddenAct != "silu" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	// Newer Transformers write rope_theta and the scaling keys as rope_parameters.
	cfg, err = ParseConfig(goldentest.Edited(t, validLlama, `"rope_scaling":null,"rope_theta":null,
		"rope_parameters":{"rope_type":"linear","factor":2.0,"rope_theta":1000.0}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RopeTheta != 1000 || cfg.RopeScaling.kind() != "linear" || cfg.RopeScaling.Factor != 2 {
		t.Errorf("rope_parameters not read: theta %g, scaling %+v", cfg.RopeTheta, cfg.RopeScaling)
	}
	// The same settings in both forms are accepted (a converted config may keep both).
	cfg, err = ParseConfig(goldentest.Edited(t, validLlama, `"rope_parameters":{"rope_type":"llama3","factor":8.0,
		"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":1024,"rope_theta":500000.0}`))
	if err != nil || cfg.RopeTheta != 500000 || cfg.RopeScaling.kind() != "llama3" {
		t.Errorf("agreeing rope_scaling and rope_parameters: %v, %+v", err, cfg)
	}
	// Accepted spellings: the old "type" key, "default", an explicit false sliding window.
	for _, edit := range []string{`"rope_scaling":{"type":"linear","factor":2.0}`, `"rope_scaling":{"rope_type":"default"}`,
		`"model_type":"qwen2","use_sliding_window":false,"sliding_window":4096`,
		`"model_type":"qwen3","layer_types":["full_attention","full_attention"]`, `"hidden_act":"swish"`} {
		if _, err := lm.NewArchitecture(goldentest.Edited(t, validLlama, edit)); err != nil {
			t.Errorf("%s: %v", edit, err)
		}
	}
}

// Which tensors each model type has: biases, q/k norms and the head follow the config as the
// Transformers classes read it.
func TestSpecsPerModelType(t *testing.T) {
	has := func(m *Model, name string) bool {
		for _, s := range m.Specs() {
			if s.Name == name {
				return true
			}
		}
		return false
	}
	cases := []struct {
		edit                                 string
		qBias, oBias, mlpBias, qNorm, lmHead bool
	}{
		{``, false, false, false, false, true},
		{`"attention_bias":true,"mlp_bias":true,"tie_word_embeddings":true`, true, true, true, false, false},
		{`"model_type":"qwen2"`, true, false, false, false, true},
		{`"model_type":"qwen2","attention_bias":true`, true, false, false, false, true}, // Qwen2 ignores it
		{`"model_type":"qwen3"`, false, false, false, true, true},
		{`"model_type":"qwen3","attention_bias":true,"tie_word_embeddings":true`, true, true, false, true, false},
	}
	for _, c := range cases {
		arch, err := lm.NewArchitecture(goldentest.Edited(t, validLlama, c.edit))
		if err != nil {
			t.Fatalf("%s: %v", c.edit, err)
		}
		m := arch.(*Model)
		got := []bool{has(m, "model.layers.1.self_attn.q_proj.bias"), has(m, "model.layers.1.self_attn.o_proj.bias"),
			has(m, "model.layers.1.mlp.up_proj.bias"), has(m, "model.layers.1.self_attn.q_norm.weight"), has(m, headName)}
		want := []bool{c.qBias, c.oBias, c.mlpBias, c.qNorm, c.lmHead}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%q: (q bias, o bias, mlp bias, q norm, lm_head) = %v, want %v", c.edit, got, want)
				break
			}
		}
		if m.Family() != m.Config().ModelType {
			t.Errorf("Family %q for model_type %q", m.Family(), m.Config().ModelType)
		}
	}
}

// Arbitrary config.json bytes never panic; an accepted config yields a usable architecture.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(validLlama))
	for _, rc := range realConfigs {
		f.Add([]byte(rc.config))
	}
	f.Add([]byte(`{"model_type":"qwen3","vocab_size":10,"hidden_size":8,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			if !strings.Contains(err.Error(), "config.json") {
				t.Fatalf("error does not name config.json: %v", err)
			}
			return
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatalf("ParseConfig accepted a config New rejects: %v", err)
		}
		if len(m.Specs()) < 2+9*cfg.NumHiddenLayers || m.NumParams() <= 0 || len(m.invFreq) != cfg.HeadDim/2 {
			t.Fatalf("specs %d, params %d", len(m.Specs()), m.NumParams())
		}
	})
}

// v5 rewrites config.json in Transformers v5's form: rope_theta and rope_scaling (the old
// "type" key renamed rope_type) moved into one rope_parameters object.
func v5(t testing.TB, raw []byte) []byte {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	params := map[string]any{"rope_type": "default"}
	if s, ok := cfg["rope_scaling"].(map[string]any); ok {
		for k, v := range s {
			if k == "type" {
				k = "rope_type"
			}
			params[k] = v
		}
	}
	params["rope_theta"] = cfg["rope_theta"]
	delete(cfg, "rope_scaling")
	delete(cfg, "rope_theta")
	cfg["rope_parameters"] = params
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A fixture's config in Transformers v5's form (rope_parameters) is the same model: bit-identical
// logits on the golden sequences, for llama3 scaling, linear scaling (the "type" key) and plain RoPE.
func TestRopeParametersSameLogits(t *testing.T) {
	for _, spec := range fixtures {
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
