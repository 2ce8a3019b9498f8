package mamba

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// Golden logits from the independent PyTorch reference (testdata/make_golden.py, float64), each
// sequence run alone. bf16 checkpoints are widened to float32 (what the CPU runtime does), so they
// must match as tightly as f32 ones.
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

// bf16 weights and activations: the scan stays float32, the rest rounds to bf16, so the error
// is that of bf16 arithmetic, not of a different computation.
func TestLogitsBF16Compute(t *testing.T) {
	f := loadFixture(t, "k4_bf16")
	seq := f.golden.Sequences[1]
	var b batch
	b.row(len(seq), seq)
	got := f.logits(t, dtypes.BFloat16, b)[0]
	rel, maxAbs := goldentest.Compare(goldentest.Flatten(got), f.golden.Logits[1])
	t.Logf("bf16 compute vs float64 reference: relative error %.2e (max abs %.2e)", rel, maxAbs)
	if rel > 5e-2 || math.IsNaN(rel) {
		t.Errorf("bf16 compute: relative error %.2e > 5e-2", rel)
	}
}

// Several sequences batched with padding, documents packed in one row and padding with running
// positions: every real token must get the logits it gets alone (conv window and SSM state reset
// at each segment start).
func TestBatchPaddingAndPacking(t *testing.T) {
	for _, name := range []string{"k4_bias_s16", "k2_nobias_s4"} {
		t.Run(name, func(t *testing.T) {
			f := loadFixture(t, name)
			s := f.golden.Sequences
			var b batch
			width := len(s[1]) + len(s[2]) + 3
			b.row(width, s[1])             // longest alone, padded
			b.row(width, s[0], s[2])       // two documents packed, positions restart
			b.row(width, s[2])             // short, heavily padded
			b.row(width, s[2], s[0], s[2]) // three packed
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
			check(3, len(s[2])+len(s[0]), 2)
			for _, row := range got {
				for _, v := range goldentest.Flatten(row) {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatal("non-finite logits (padding rows must stay finite)")
					}
				}
			}
		})
	}
}

// A segment id change alone (without position 0) also starts a new history.
func TestSegmentChangeWithoutPositionReset(t *testing.T) {
	f := loadFixture(t, "k4_bias_s16")
	s := f.golden.Sequences
	b := batch{
		tokens:    [][]int32{append(append([]int32{}, s[0]...), s[2]...)},
		positions: [][]int32{make([]int32, len(s[0])+len(s[2]))},
		segments:  [][]int32{make([]int32, len(s[0])+len(s[2]))},
	}
	for i := range b.positions[0] {
		b.positions[0][i] = int32(i + 3) // no zero anywhere
		b.segments[0][i] = 1
		if i >= len(s[0]) {
			b.segments[0][i] = 2
		}
	}
	got := f.logits(t, dtypes.Float32, b)[0]
	rel, _ := goldentest.Compare(goldentest.Flatten(got[len(s[0]):]), f.golden.Logits[2])
	if rel > 1e-4 {
		t.Errorf("second segment: relative error %.2e", rel)
	}
}

// Causality: the logits of a prefix equal the first positions of the full sequence's logits.
func TestPrefixCausality(t *testing.T) {
	f := loadFixture(t, "k4_bias_s16")
	seq := f.golden.Sequences[1]
	var full batch
	full.row(len(seq), seq)
	want := f.logits(t, dtypes.Float32, full)[0]
	for _, k := range []int{1, 2, 5, len(seq) - 1} {
		var b batch
		b.row(k, seq[:k])
		got := f.logits(t, dtypes.Float32, b)[0]
		for i := range k {
			rel, _ := goldentest.Compare(got[i], goldentest.Float64s(want[i]))
			if rel > 1e-5 {
				t.Fatalf("prefix %d, position %d: relative error %.2e", k, i, rel)
			}
		}
	}
}

// stepper runs Model.Step with the cache kept between calls, as a generation loop does.
type stepper struct {
	exec   *Exec
	params []any
	cache  []*tensors.Tensor
}

func newStepper(t *testing.T, f *fixture) *stepper {
	cacheShapes := f.model.CacheShapes(64, dtypes.Float32)
	if len(cacheShapes) != 2*f.model.cfg.NumHiddenLayers {
		t.Fatalf("CacheShapes: %d entries, want %d", len(cacheShapes), 2*f.model.cfg.NumHiddenLayers)
	}
	nParams, nCache := len(f.model.Specs()), len(cacheShapes)
	exec, err := NewExec(goldentest.Backend(t), func(inputs []*Node) []*Node {
		p := goldentest.ParamsFrom(f.model.Specs(), inputs)
		logits, cache := f.model.Step(p, inputs[nParams:nParams+nCache], inputs[nParams+nCache], inputs[nParams+nCache+1])
		return append([]*Node{logits}, cache...)
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &stepper{exec: exec}
	for _, p := range f.paramTensors(t, dtypes.Float32) {
		s.params = append(s.params, p)
	}
	for _, cs := range cacheShapes {
		s.cache = append(s.cache, tensors.FromShape(shapes.Make(cs.DType, cs.Dimensions...)))
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

// Recurrent decoding (prefill, a chunk, then single tokens) equals the whole-sequence scan and
// the PyTorch reference.
func TestStepMatchesFullForward(t *testing.T) {
	for _, name := range []string{"k4_bias_s16", "k2_nobias_s4"} {
		t.Run(name, func(t *testing.T) {
			f := loadFixture(t, name)
			seq := f.golden.Sequences[1]
			var full batch
			full.row(len(seq), seq)
			want := f.logits(t, dtypes.Float32, full)[0]
			s := newStepper(t, f)
			var got [][]float32
			// Chunks of 2 (shorter than the conv window of 4), 5, then one token at a time.
			for start, chunk := 0, 2; start < len(seq); start += chunk {
				if start == 2 {
					chunk = 5
				} else if start >= 7 {
					chunk = 1
				}
				end := min(start+chunk, len(seq))
				got = append(got, s.step(t, seq[start:end], start)...)
			}
			for i := range seq {
				rel, maxAbs := goldentest.Compare(got[i], goldentest.Float64s(want[i]))
				if rel > 1e-5 {
					t.Errorf("position %d: step vs full relative error %.2e (max abs %.2e)", i, rel, maxAbs)
				}
			}
			rel, _ := goldentest.Compare(goldentest.Flatten(got), f.golden.Logits[1])
			if rel > 1e-4 {
				t.Errorf("step logits vs PyTorch: relative error %.2e", rel)
			}
		})
	}
}

// Scan (pairwise, log depth) equals the step-by-step recurrence for odd and even lengths, with and
// without an initial state, with zeros in a (resets), and its gradients equal those of the
// recurrence.
func TestScanEqualsSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, T := range []int{1, 2, 3, 7, 8, 13, 32} {
		const B, F = 2, 3
		a := make([]float32, B*T*F)
		b := make([]float32, B*T*F)
		h0 := make([]float32, B*F)
		for i := range a {
			a[i] = float32(rng.Float64())
			if rng.IntN(5) == 0 {
				a[i] = 0
			}
			b[i] = float32(rng.NormFloat64())
		}
		for i := range h0 {
			h0[i] = float32(rng.NormFloat64())
		}
		at := tensors.FromFlatDataAndDimensions(a, B, T, F)
		bt := tensors.FromFlatDataAndDimensions(b, B, T, F)
		ht := tensors.FromFlatDataAndDimensions(h0, B, F)
		for _, withH0 := range []bool{false, true} {
			run := func(scan func(a, b, h0 *Node) *Node) [][]float32 {
				exec, err := NewExec(goldentest.Backend(t), func(a, b, h0 *Node) []*Node {
					var init *Node
					if withH0 {
						init = h0
					}
					s := scan(a, b, init)
					// A weighted sum makes every state matter to the gradient.
					w := Iota(a.Graph(), s.Shape(), 1)
					loss := ReduceAllSum(Mul(Square(s), AddScalar(ConvertDType(w, dtypes.Float32), 1)))
					g := Gradient(loss, a, b, h0)
					return []*Node{s, g[0], g[1], g[2]}
				})
				if err != nil {
					t.Fatal(err)
				}
				return goldentest.Outputs(t, exec, at, bt, ht)
			}
			got, want := run(Scan), run(SequentialScan)
			for i, what := range []string{"states", "grad a", "grad b", "grad h0"} {
				rel, maxAbs := goldentest.Compare(got[i], goldentest.Float64s(want[i]))
				if rel > 1e-5 || math.IsNaN(rel) {
					t.Errorf("T=%d h0=%v %s: relative error %.2e (max abs %.2e)", T, withH0, what, rel, maxAbs)
				}
			}
		}
	}
}

// ScanOutput (blocks of scanRadix steps built from the small inputs, pairwise scan across blocks,
// contraction per phase) equals the sequential recurrence contracted with C, for lengths below,
// at and across block boundaries, with run starts (a huge dt makes the decay exactly 0), and so do
// its gradients w.r.t. dt, dtx, B, C and A.
func TestScanOutputEqualsSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, T := range []int{1, 2, 3, scanRadix - 1, scanRadix, scanRadix + 1, 2*scanRadix + 3, 5 * scanRadix} {
		const B, D, N = 2, 3, 4
		dt, dtx := make([]float32, B*T*D), make([]float32, B*T*D)
		bm, cm := make([]float32, B*T*N), make([]float32, B*T*N)
		A := make([]float32, D*N)
		for i := range dt {
			dt[i] = float32(0.05 + 0.5*rng.Float64())
			if rng.IntN(7) == 0 {
				dt[i] += 1e30 // run start
			}
			dtx[i] = float32(rng.NormFloat64())
		}
		for i := range bm {
			bm[i], cm[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		for i := range A {
			A[i] = -float32(0.2 + 2*rng.Float64())
		}
		args := []any{
			tensors.FromFlatDataAndDimensions(dt, B, T, D), tensors.FromFlatDataAndDimensions(dtx, B, T, D),
			tensors.FromFlatDataAndDimensions(bm, B, T, N), tensors.FromFlatDataAndDimensions(cm, B, T, N),
			tensors.FromFlatDataAndDimensions(A, D, N),
		}
		run := func(f func(dt, dtx, bm, cm, A *Node) *Node) [][]float32 {
			exec, err := NewExec(goldentest.Backend(t), func(in []*Node) []*Node {
				y := f(in[0], in[1], in[2], in[3], in[4])
				w := Iota(y.Graph(), y.Shape(), 1)
				loss := ReduceAllSum(Mul(Square(y), AddScalar(ConvertDType(w, dtypes.Float32), 1)))
				return append([]*Node{y}, Gradient(loss, in...)...)
			})
			if err != nil {
				t.Fatal(err)
			}
			return goldentest.Outputs(t, exec, args...)
		}
		got := run(ScanOutput)
		want := run(func(dt, dtx, bm, cm, A *Node) *Node {
			return contract(SequentialScan(decay(dt, A), outer(dtx, bm), nil), cm)
		})
		for i, what := range []string{"y", "grad dt", "grad dtx", "grad B", "grad C", "grad A"} {
			rel, maxAbs := goldentest.Compare(got[i], goldentest.Float64s(want[i]))
			if rel > 1e-5 || math.IsNaN(rel) {
				t.Errorf("T=%d %s: relative error %.2e (max abs %.2e)", T, what, rel, maxAbs)
			}
		}
	}
}

// Training loss (mean next-token cross-entropy over weighted positions) and gradients w.r.t.
// several parameters, through graph.Gradient and the scan, against PyTorch autograd.
func TestGoldenLossAndGradients(t *testing.T) {
	for _, name := range fixtureNames {
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
				positions := Iota(tokens.Graph(), tokens.Shape(), 1)
				logits := f.model.Logits(p, tokens, positions, OnesLike(tokens))
				logp := LogSoftmax(logits, -1)
				picked := ReduceSum(Mul(logp, OneHot(targets, f.model.VocabSize(), dtypes.Float32)), -1)
				loss := Div(Neg(ReduceAllSum(Mul(picked, weights))), ReduceAllSum(weights))
				var wrt []*Node
				for _, n := range gradNames {
					wrt = append(wrt, inputs[index[n]])
				}
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
			if math.Abs(loss-L.Value) > 1e-5*math.Abs(L.Value) {
				t.Errorf("loss %.7f, PyTorch %.7f", loss, L.Value)
			}
			for i, n := range gradNames {
				rel, maxAbs := goldentest.Compare(tensors.MustCopyFlatData[float32](out[1+i]), L.Grads[n])
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
			if !want[n] {
				t.Errorf("%s: checkpoint tensor %s is not in Specs", name, n)
			}
		}
		if len(f.weights) != len(want) {
			t.Errorf("%s: checkpoint has %d tensors, Specs %d", name, len(f.weights), len(want))
		}
	}
}

// state-spaces/mamba-2.8b-hf's config.json.
const realConfig = `{"architectures":["MambaForCausalLM"],"model_type":"mamba","vocab_size":50280,
"hidden_size":2560,"state_size":16,"num_hidden_layers":64,"layer_norm_epsilon":1e-5,"expand":2,
"conv_kernel":4,"use_bias":false,"use_conv_bias":true,"hidden_act":"silu","time_step_rank":160,
"intermediate_size":5120,"residual_in_fp32":true,"tie_word_embeddings":true,"pad_vocab_size_multiple":8,
"bos_token_id":0,"eos_token_id":0,"pad_token_id":0}`

func TestConfigFromRealMamba28B(t *testing.T) {
	arch, err := lm.NewArchitecture(json.RawMessage(realConfig))
	if err != nil {
		t.Fatal(err)
	}
	m := arch.(*Model)
	if m.Family() != "mamba" || m.VocabSize() != 50280 || m.MaxLength() != 0 {
		t.Errorf("family %q vocab %d max %d", m.Family(), m.VocabSize(), m.MaxLength())
	}
	// 64 layers of 41,244,160 plus embeddings 50280*2560 and norm_f.
	if n := m.NumParams(); n != 2768345600 {
		t.Errorf("NumParams = %d, want 2768345600", n)
	}
	specs := m.Specs()
	if specs[0].Name != "backbone.embeddings.weight" || len(specs[0].Aliases) != 1 || specs[0].Aliases[0] != "lm_head.weight" {
		t.Errorf("embedding spec %+v", specs[0])
	}
	cs := m.CacheShapes(2048, dtypes.BFloat16)
	if len(cs) != 128 || cs[0].DType != dtypes.BFloat16 || cs[0].Dimensions[1] != 5120 || cs[0].Dimensions[2] != 3 ||
		cs[1].DType != dtypes.Float32 || cs[1].Dimensions[2] != 16 {
		t.Errorf("CacheShapes = %+v", cs[:2])
	}
	// "auto" rank is ceil(hidden/16).
	cfg, err := ParseConfig(json.RawMessage(strings.Replace(realConfig, `"time_step_rank":160`, `"time_step_rank":"auto"`, 1)))
	if err != nil || cfg.TimeStepRank != 160 {
		t.Errorf("auto rank: %d, %v", cfg.TimeStepRank, err)
	}
	cfg, err = ParseConfig(json.RawMessage(`{"vocab_size":10,"hidden_size":33,"num_hidden_layers":1}`))
	if err != nil || cfg.TimeStepRank != 3 || cfg.IntermediateSize != 66 || cfg.StateSize != 16 || cfg.ConvKernel != 4 ||
		!cfg.UseConvBias || cfg.UseBias || !cfg.TieWordEmbeddings || !cfg.ResidualInFP32 || cfg.LayerNormEpsilon != 1e-5 {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ edit, field string }{
		{`"vocab_size":0`, "vocab_size"},
		{`"hidden_size":-1`, "hidden_size"},
		{`"state_size":0`, "state_size"},
		{`"num_hidden_layers":0`, "num_hidden_layers"},
		{`"expand":0`, "expand"},
		{`"conv_kernel":0`, "conv_kernel"},
		{`"conv_kernel":1`, "conv_kernel"},
		{`"intermediate_size":5000`, "intermediate_size"},
		{`"time_step_rank":"big"`, "time_step_rank"},
		{`"time_step_rank":0`, "time_step_rank"},
		{`"layer_norm_epsilon":-1`, "layer_norm_epsilon"},
		{`"hidden_act":"gelu"`, "hidden_act"},
		{`"pad_vocab_size_multiple":-8`, "pad_vocab_size_multiple"},
		{`"use_bias":"yes"`, "use_bias"},
	}
	for _, c := range cases {
		var cfg map[string]any
		if err := json.Unmarshal([]byte(realConfig), &cfg); err != nil {
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
}

// softplus (the Exp + series form, no Log) matches log(1 + exp(x)) in float64 to float32
// precision from deep underflow to PyTorch's threshold region.
func TestSoftplusAccuracy(t *testing.T) {
	var xs []float32
	for x := -80.0; x <= 100; x += 0.001 {
		xs = append(xs, float32(x))
	}
	exec, err := NewExec(goldentest.Backend(t), func(x *Node) *Node { return softplus(x) })
	if err != nil {
		t.Fatal(err)
	}
	got := exec.MustExec(tensors.FromValue(xs))[0].Value().([]float32)
	for i, x := range xs {
		want := math.Log1p(math.Exp(float64(x)))
		if rel := math.Abs(float64(got[i])-want) / want; rel > 1e-6 || math.IsNaN(rel) {
			t.Fatalf("softplus(%g) = %g, want %g (relative error %.2e)", x, got[i], want, rel)
		}
	}
}

// LogitsFLOPs on the benchmark config, worked by hand: per token and layer in_proj
// 2·256·1024 = 524,288, conv 2·512·4 = 4,096, x_proj 2·512·48 = 49,152, dt_proj 2·16·512 =
// 16,384, out_proj 2·512·256 = 262,144, scan 6·512·16 = 49,152 (905,216 in all, x 18 layers =
// 16,293,888), head 2·256·8192 = 4,194,304: 20,488,192 per token, x 256 = 5,244,977,152.
// Without the scan it is 2 x the multiplied parameters (projections, conv, embedding as head).
func TestLogitsFLOPs(t *testing.T) {
	arch, err := lm.NewArchitecture(benchConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	m := arch.(*Model)
	if got, want := m.LogitsFLOPs(256), 5_244_977_152.0; got != want {
		t.Errorf("LogitsFLOPs(256) = %.0f, want %.0f", got, want)
	}
	multiplied := 0
	for _, s := range m.Specs() {
		if strings.HasSuffix(s.Name, "proj.weight") || strings.HasSuffix(s.Name, "conv1d.weight") || s.Name == embedName {
			n := 1
			for _, d := range s.Shape {
				n *= d
			}
			multiplied += n
		}
	}
	c := m.Config()
	scan := 6 * float64(c.IntermediateSize*c.StateSize*c.NumHiddenLayers)
	if got, want := m.LogitsFLOPs(1)-scan, 2*float64(multiplied); got != want {
		t.Errorf("per-token FLOPs without the scan %.0f, want 2 x %d multiplied parameters = %.0f", got, multiplied, want)
	}
	if m.LogitsFLOPs(2048) != 8*m.LogitsFLOPs(256) {
		t.Error("Mamba's FLOPs are not linear in T")
	}
}
