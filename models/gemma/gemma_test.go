package gemma

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// Golden logits from the independent PyTorch reference (testdata/make_golden.py), each sequence
// run alone. bf16 checkpoints are compared after widening the weights to float32 (what the CPU
// runtime does), so they must match as tightly as f32 ones.
func TestGoldenLogits(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			f := loadFixture(t, name)
			for i, seq := range f.golden.Sequences {
				var b batch
				b.row(len(seq), seq)
				got := f.logits(t, dtypes.Float32, b)[0]
				rel, maxAbs := goldentest.Compare(goldentest.Flatten(got), f.golden.Logits[i])
				if rel > 1e-4 || math.IsNaN(rel) {
					t.Errorf("sequence %d: relative error %.2e (max abs %.2e) > 1e-4", i, rel, maxAbs)
				}
			}
		})
	}
}

// bf16 weights and bf16 activations against the reference computed in bf16 by PyTorch. Rounding
// differs between implementations, so the tolerance is that of bf16 (8 bits of mantissa).
func TestGoldenLogitsBF16Compute(t *testing.T) {
	f := loadFixture(t, "gqa_bf16")
	if len(f.golden.LogitsBF16) == 0 {
		t.Fatal("golden.json has no logits_bf16")
	}
	for i, seq := range f.golden.Sequences {
		var b batch
		b.row(len(seq), seq)
		got := f.logits(t, dtypes.BFloat16, b)[0]
		rel, maxAbs := goldentest.Compare(goldentest.Flatten(got), f.golden.LogitsBF16[i])
		relF32, _ := goldentest.Compare(goldentest.Flatten(got), f.golden.Logits[i])
		t.Logf("sequence %d: vs torch bf16 %.2e (max abs %.2e), vs f32 %.2e", i, rel, maxAbs, relF32)
		if rel > 3e-2 || math.IsNaN(rel) {
			t.Errorf("sequence %d: relative error %.2e vs PyTorch bf16 > 3e-2", i, rel)
		}
	}
}

// Several sequences batched with padding, two documents packed in one row and extra padding:
// every real token must get the logits it gets alone.
func TestBatchPaddingAndPacking(t *testing.T) {
	f := loadFixture(t, "gqa_sharded")
	s := f.golden.Sequences
	var b batch
	width := len(s[0]) + len(s[2]) + 3
	b.row(width, s[1])       // longest alone, padded
	b.row(width, s[0], s[2]) // two documents packed, positions restart
	b.row(width, s[2])       // short, heavily padded
	b.row(width, s[2], s[0]) // packed in the other order
	got := f.logits(t, dtypes.Float32, b)
	check := func(row, offset, seq int) {
		t.Helper()
		n := len(s[seq])
		rel, maxAbs := goldentest.Compare(goldentest.Flatten(got[row][offset:offset+n]), f.golden.Logits[seq])
		if rel > 1e-4 || math.IsNaN(rel) {
			t.Errorf("row %d, sequence %d at offset %d: relative error %.2e (max abs %.2e)", row, seq, offset, rel, maxAbs)
		}
	}
	check(0, 0, 1)
	check(1, 0, 0)
	check(1, len(s[0]), 2)
	check(2, 0, 2)
	check(3, 0, 2)
	check(3, len(s[2]), 0)
	for _, row := range got {
		for _, v := range goldentest.Flatten(row) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatal("non-finite logits (padding rows must stay finite)")
			}
		}
	}
}

// Causality: the logits of a prefix equal the first positions of the full sequence's logits.
func TestPrefixCausality(t *testing.T) {
	f := loadFixture(t, "mqa")
	seq := f.golden.Sequences[1]
	var full batch
	full.row(len(seq), seq)
	want := f.logits(t, dtypes.Float32, full)[0]
	for _, k := range []int{1, 4, len(seq) - 1} {
		var b batch
		b.row(k, seq[:k])
		got := f.logits(t, dtypes.Float32, b)[0]
		for i := range k {
			for j := range got[i] {
				if d := math.Abs(float64(got[i][j] - want[i][j])); d > 1e-4*(1+math.Abs(float64(want[i][j]))) {
					t.Fatalf("prefix %d, position %d, logit %d: %g vs %g", k, i, j, got[i][j], want[i][j])
				}
			}
		}
	}
}

// stepper runs Model.Step with the KV cache kept between calls, as a generation loop does.
type stepper struct {
	f      *fixture
	exec   *Exec
	params []any
	cache  []*tensors.Tensor
}

func newStepper(t *testing.T, f *fixture, maxLen int) *stepper {
	shapes := f.model.CacheShapes(maxLen, dtypes.Float32)
	if len(shapes) != 2*f.model.cfg.NumHiddenLayers {
		t.Fatalf("CacheShapes: %d entries, want %d", len(shapes), 2*f.model.cfg.NumHiddenLayers)
	}
	nParams, nCache := len(f.model.Specs()), len(shapes)
	exec, err := NewExec(goldentest.Backend(t), func(inputs []*Node) []*Node {
		p := goldentest.ParamsFrom(f.model.Specs(), inputs)
		logits, cache := f.model.Step(p, inputs[nParams:nParams+nCache], inputs[nParams+nCache], inputs[nParams+nCache+1])
		return append([]*Node{logits}, cache...)
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &stepper{f: f, exec: exec}
	for _, p := range f.paramTensors(t, dtypes.Float32) {
		s.params = append(s.params, p)
	}
	for _, cs := range shapes {
		size := 1
		for _, d := range cs.Dimensions {
			size *= d
		}
		s.cache = append(s.cache, tensors.FromFlatDataAndDimensions(make([]float32, size), cs.Dimensions...))
	}
	return s
}

func (s *stepper) step(t *testing.T, tokens []int32, start int) [][]float32 {
	args := append([]any{}, s.params...)
	for _, c := range s.cache {
		args = append(args, c)
	}
	args = append(args, tensors.FromValue([][]int32{tokens}), tensors.FromScalar(int32(start)))
	out, err := s.exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	s.cache = out[1:]
	return out[0].Value().([][][]float32)[0]
}

// Cached decoding (prefill of a prompt, then chunks and single tokens) equals recomputing the
// full sequence, and both equal the PyTorch reference.
func TestStepMatchesFullRecomputation(t *testing.T) {
	for _, name := range []string{"gqa_sharded", "mqa"} {
		t.Run(name, func(t *testing.T) {
			f := loadFixture(t, name)
			seq := f.golden.Sequences[1]
			var full batch
			full.row(len(seq), seq)
			want := f.logits(t, dtypes.Float32, full)[0]
			s := newStepper(t, f, len(seq)+3) // cache longer than the sequence: unused slots must be masked
			var got [][]float32
			for start, chunk := 0, 5; start < len(seq); start += chunk {
				if start >= 8 {
					chunk = 1 // decoding one token at a time after a prefill and a chunk
				}
				end := min(start+chunk, len(seq))
				got = append(got, s.step(t, seq[start:end], start)...)
			}
			for i := range seq {
				rel, maxAbs := goldentest.Compare(got[i], goldentest.Float64s(want[i]))
				if rel > 1e-5 {
					t.Errorf("position %d: cached vs full relative error %.2e (max abs %.2e)", i, rel, maxAbs)
				}
			}
			rel, _ := goldentest.Compare(goldentest.Flatten(got), f.golden.Logits[1])
			if rel > 1e-4 {
				t.Errorf("cached logits vs PyTorch: relative error %.2e", rel)
			}
			// A cache exactly as long as the sequence, filled by one prefill.
			exact := newStepper(t, f, len(seq)).step(t, seq, 0)
			if rel, _ := goldentest.Compare(goldentest.Flatten(exact), f.golden.Logits[1]); rel > 1e-4 {
				t.Errorf("single prefill into an exact-size cache vs PyTorch: relative error %.2e", rel)
			}
		})
	}
}

// Training-style loss (mean next-token cross-entropy over chosen positions) and its gradients
// w.r.t. a few parameters, computed with graph.Gradient, against PyTorch autograd.
func TestGoldenLossAndGradients(t *testing.T) {
	for _, name := range []string{"mha", "gqa_sharded"} {
		t.Run(name, func(t *testing.T) {
			f := loadFixture(t, name)
			L := f.golden.Loss
			specs := f.model.Specs()
			index := map[string]int{}
			for i, s := range specs {
				index[s.Name] = i
			}
			var gradNames []string
			for n := range L.Grads {
				gradNames = append(gradNames, n)
			}
			nParams := len(specs)
			exec, err := NewExec(goldentest.Backend(t), func(inputs []*Node) []*Node {
				p := goldentest.ParamsFrom(f.model.Specs(), inputs)
				tokens, targets, weights := inputs[nParams], inputs[nParams+1], inputs[nParams+2]
				T := tokens.Shape().Dimensions[1]
				positions := Iota(tokens.Graph(), tokens.Shape(), 1)
				segments := OnesLike(tokens)
				logits := f.model.Logits(p, tokens, positions, segments)
				logp := LogSoftmax(logits, -1)
				picked := ReduceSum(Mul(logp, OneHot(targets, f.model.VocabSize(), dtypes.Float32)), -1) // [1, T]
				loss := Div(Neg(ReduceAllSum(Mul(picked, weights))), ReduceAllSum(weights))
				var wrt []*Node
				for _, n := range gradNames {
					wrt = append(wrt, inputs[index[n]])
				}
				_ = T
				return append([]*Node{loss}, Gradient(loss, wrt...)...)
			})
			if err != nil {
				t.Fatal(err)
			}
			var args []any
			for _, p := range f.paramTensors(t, dtypes.Float32) {
				args = append(args, p)
			}
			args = append(args, tensors.FromValue([][]int32{L.Tokens}), tensors.FromValue([][]int32{L.Targets}),
				tensors.FromValue([][]float32{L.Weights}))
			out, err := exec.Exec(args...)
			if err != nil {
				t.Fatal(err)
			}
			loss := float64(out[0].Value().(float32))
			if math.Abs(loss-L.Value) > 1e-4*math.Abs(L.Value) {
				t.Errorf("loss %.7f, PyTorch %.7f", loss, L.Value)
			}
			for i, n := range gradNames {
				var got []float32
				tensors.MustConstFlatData(out[1+i], func(flat []float32) { got = append(got, flat...) })
				rel, maxAbs := goldentest.Compare(got, L.Grads[n])
				if rel > 1e-4 || math.IsNaN(rel) {
					t.Errorf("gradient of %s: relative error %.2e (max abs %.2e)", n, rel, maxAbs)
				}
			}
		})
	}
}

// Specs must name exactly the checkpoint's tensors (plus the allowed tied-head alias).
func TestSpecsMatchCheckpoints(t *testing.T) {
	for _, name := range fixtureNames {
		f := loadFixture(t, name)
		want := map[string]bool{}
		for _, s := range f.model.Specs() {
			want[s.Name] = true
		}
		for n := range f.weights {
			if !want[n] && n != tiedHeadAlias {
				t.Errorf("%s: checkpoint tensor %s is not in Specs", name, n)
			}
		}
		if got, wantN := len(f.model.Specs()), 2+9*f.model.cfg.NumHiddenLayers; got != wantN {
			t.Errorf("%s: %d specs, want %d", name, got, wantN)
		}
	}
}

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
		{`"vocab_size":"many"`, "vocab_size"},
		{`"tie_word_embeddings":false`, "tie_word_embeddings"},
		{`"num_hidden_layers":1000000000000`, "num_hidden_layers"},
		{`"vocab_size":9000000000000`, "vocab_size"},
		{`"head_dim":4611686018427387904`, "num_hidden_layers"}, // (heads+kv)*head_dim overflows int64
	}
	for _, c := range cases {
		var cfg map[string]any
		if err := json.Unmarshal([]byte(validConfig), &cfg); err != nil {
			t.Fatal(err)
		}
		var edit map[string]any
		if err := json.Unmarshal([]byte("{"+c.edit+"}"), &edit); err != nil {
			t.Fatal(err)
		}
		for k, v := range edit {
			cfg[k] = v
		}
		raw, _ := json.Marshal(cfg)
		_, err := lm.NewArchitecture(raw)
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
}

// The memory estimate of the real 2b shapes at 2,048 tokens (docs/gemma.md quotes it).
func TestScoringMemoryEstimate2B(t *testing.T) {
	arch, err := lm.NewArchitecture(json.RawMessage(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	m := arch.(*Model)
	est, err := m.EstimateScoringMemory(goldentest.Backend(t), 1, 2048, dtypes.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gemma-2b, 1 x 2048 tokens, bf16: %s", est)
	if est.ParamBytes != 2*2506172416 {
		t.Errorf("ParamBytes = %d, want %d", est.ParamBytes, 2*2506172416)
	}
	if est.LogitsBytes != 4*2048*256000 {
		t.Errorf("LogitsBytes = %d", est.LogitsBytes)
	}
	// At least the logits and the bf16 logits they are converted from are alive together.
	if est.PeakActivationBytes < est.LogitsBytes+est.LogitsBytes/2 || est.PeakActivationBytes > 8*est.LogitsBytes {
		t.Errorf("PeakActivationBytes = %d, implausible next to logits of %d", est.PeakActivationBytes, est.LogitsBytes)
	}
	half, err := m.EstimateScoringMemory(goldentest.Backend(t), 1, 1024, dtypes.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	if !(half.PeakActivationBytes < est.PeakActivationBytes) || half.ParamBytes != est.ParamBytes {
		t.Errorf("1024 tokens: %s; 2048 tokens: %s", half, est)
	}
	for _, c := range []struct {
		dtype         dtypes.DType
		batch, seqLen int
	}{{dtypes.Float32, 1, 2048}, {dtypes.BFloat16, 4, 2048}, {dtypes.BFloat16, 1, 512}} {
		e, err := m.EstimateScoringMemory(goldentest.Backend(t), c.batch, c.seqLen, c.dtype)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("gemma-2b, %d x %d tokens, %s: %s", c.batch, c.seqLen, c.dtype, e)
	}
	if _, err := m.EstimateScoringMemory(goldentest.Backend(t), 0, 10, dtypes.Float32); err == nil {
		t.Error("batch 0 accepted")
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
