package gemma

// The lm.Architecture contract is checked by conformance_test.go (models/lm/lmtest); these
// tests cover what is Gemma's own: configs of real checkpoints, config errors and the memory
// estimate.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

const validConfig = `{"model_type":"gemma","vocab_size":256000,"hidden_size":2048,"intermediate_size":16384,
"num_hidden_layers":18,"num_attention_heads":8,"num_key_value_heads":1,"head_dim":256,"rms_norm_eps":1e-6,
"rope_theta":10000.0,"max_position_embeddings":8192,"hidden_act":"gelu"}`

func TestConfigFromRealGemma2B(t *testing.T) {
	arch, err := lm.NewArchitecture(json.RawMessage(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	m := arch.(*Model)
	if m.Family() != "gemma" || m.VocabSize() != 256000 || m.MaxLength() != 8192 {
		t.Errorf("family %q vocab %d max %d", m.Family(), m.VocabSize(), m.MaxLength())
	}
	// google/gemma-2b-it has 2,506,172,416 parameters (embedding tied).
	if n := m.NumParams(); n != 2506172416 {
		t.Errorf("NumParams = %d, want 2506172416", n)
	}
	cs := m.CacheShapes(2048, dtypes.BFloat16)
	if len(cs) != 36 || cs[0].DType != dtypes.BFloat16 || len(cs[0].Dimensions) != 4 ||
		cs[0].Dimensions[1] != 1 || cs[0].Dimensions[2] != 2048 || cs[0].Dimensions[3] != 256 {
		t.Errorf("CacheShapes = %+v", cs[:1])
	}
}

// testdata/gemma2b_shapes.json is gemma-2b's config as a file, for `perpetual bench --config`
// (random weights of the real shapes: docs/benchmarks.md); it must stay the same model.
func TestGemma2BShapesFile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "gemma2b_shapes.json"))
	if err != nil {
		t.Fatal(err)
	}
	arch, err := lm.NewArchitecture(raw)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := lm.NewArchitecture(json.RawMessage(validConfig))
	m, w := arch.(*Model), want.(*Model)
	if m.NumParams() != 2506172416 || !reflect.DeepEqual(m.cfg, w.cfg) {
		t.Errorf("%d parameters, config %+v; want gemma-2b's %+v", m.NumParams(), m.cfg, w.cfg)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ edit, field string }{
		{`"vocab_size":0`, "vocab_size"},
		{`"hidden_size":-1`, "hidden_size"},
		{`"intermediate_size":0`, "intermediate_size"},
		{`"num_hidden_layers":0`, "num_hidden_layers"},
		{`"num_key_value_heads":3`, "num_key_value_heads"},
		{`"head_dim":7`, "head_dim"},
		{`"rms_norm_eps":-1`, "rms_norm_eps"},
		{`"rope_theta":0.5`, "rope_theta"},
		{`"hidden_act":"relu"`, "hidden_act"},
		{`"hidden_activation":"silu"`, "hidden_activation"},
		{`"attention_bias":true`, "attention_bias"},
		{`"rope_scaling":{"type":"linear","factor":2}`, "rope_scaling"},
		{`"rope_parameters":{"rope_type":"linear","factor":2}`, "rope_parameters.rope_type"},
		{`"rope_parameters":{"rope_type":"default","rope_theta":500.0}`, "rope_theta=10000 and rope_parameters.rope_theta=500"},
		{`"rope_parameters":[]`, "rope_parameters"},
		{`"vocab_size":"many"`, "vocab_size"},
		{`"tie_word_embeddings":false`, "tie_word_embeddings"},
		{`"num_hidden_layers":1000000000000`, "num_hidden_layers"},
		{`"vocab_size":9000000000000`, "vocab_size"},
		{`"head_dim":4611686018427387904`, "num_hidden_layers"}, // (heads+kv)*head_dim overflows int64
	}
	for _, c := range cases {
		_, err := lm.NewArchitecture(goldentest.Edited(t, validConfig, c.edit))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %v does not name %s", c.edit, err, c.field)
		}
	}
	// Missing optional fields take their conventional defaults.
	cfg, err := ParseConfig(json.RawMessage(`{"vocab_size":10,"hidden_size":8,"intermediate_size":4,
		"num_hidden_layers":1,"num_attention_heads":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NumKeyValueHeads != 2 || cfg.HeadDim != 4 || cfg.RMSNormEps != 1e-6 || cfg.RopeTheta != 10000 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	// Transformers v5 writes the RoPE base as rope_parameters.
	cfg, err = ParseConfig(goldentest.Edited(t, validConfig, `"rope_theta":null,"rope_parameters":{"rope_type":"default","rope_theta":500.0}`))
	if err != nil || cfg.RopeTheta != 500 {
		t.Errorf("rope_parameters.rope_theta not read: %v, %g", err, cfg.RopeTheta)
	}
}

// Arbitrary config.json bytes never panic; an accepted config yields a usable architecture.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(validConfig))
	f.Add([]byte(`{"vocab_size":10,"hidden_size":8,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2}`))
	f.Add([]byte(`{"hidden_size":8,"num_attention_heads":3}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "gemma config.json: ") {
				t.Fatalf("error does not name config.json: %v", err)
			}
			return
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatalf("ParseConfig accepted a config New rejects: %v", err)
		}
		if len(m.Specs()) != 2+9*cfg.NumHiddenLayers || m.NumParams() <= 0 {
			t.Fatalf("specs %d, params %d", len(m.Specs()), m.NumParams())
		}
	})
}

// LogitsFLOPs on the benchmark config, worked by hand: per token and layer q 2·256·256 =
// 131,072, k and v 2·2·256·64 = 65,536, o 131,072, MLP 3·2·256·1024 = 1,572,864 (1,900,544 in
// all, x 8 layers = 15,204,352), head 2·256·8192 = 4,194,304: 19,398,656 per token, x 256 =
// 4,966,055,936; attention 2·2·256·256²·8 = 536,870,912. The per-token part is 2 x the
// parameters that are multiplied (every weight but the norms, the embedding once as the head).
func TestLogitsFLOPs(t *testing.T) {
	arch, err := lm.NewArchitecture(benchConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	m := arch.(*Model)
	if got, want := m.LogitsFLOPs(256), 4_966_055_936.0+536_870_912; got != want {
		t.Errorf("LogitsFLOPs(256) = %.0f, want %.0f", got, want)
	}
	multiplied := 0
	for _, s := range m.Specs() {
		if len(s.Shape) == 2 {
			multiplied += s.Shape[0] * s.Shape[1]
		}
	}
	c := m.Config()
	attention1 := 2 * 2 * float64(c.NumAttentionHeads*c.HeadDim*c.NumHiddenLayers) // T = 1
	if got, want := m.LogitsFLOPs(1)-attention1, 2*float64(multiplied); got != want {
		t.Errorf("per-token FLOPs %.0f, want 2 x %d multiplied parameters = %.0f", got, multiplied, want)
	}
}
