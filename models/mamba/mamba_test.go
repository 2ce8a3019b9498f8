package mamba

// The lm.Architecture contract is checked by conformance_test.go (models/lm/lmtest); these
// tests cover what is Mamba's own: segment resets, the scans, configs and softplus.

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
	"github.com/perpetual-ml/perpetual/models/lm/lmtest"
)

// A segment id change alone (positions not restarting, none of them 0) also starts a new
// history: Mamba resets its conv window and state on segment ids. The suite's packing check
// (conformance_test.go) restarts positions as well, so it cannot tell the two apart.
func TestSegmentChangeWithoutPositionReset(t *testing.T) {
	dir := filepath.Join("testdata", "k4_bias_s16")
	m, err := lm.Load(dir, lm.LoadOptions{Backend: goldentest.Backend(t)})
	if err != nil {
		t.Fatal(err)
	}
	g, err := lmtest.ReadGolden(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := g.Sequences
	tokens := append(slices.Clone(s[0]), s[2]...)
	positions, segments := make([]int32, len(tokens)), make([]int32, len(tokens))
	for i := range tokens {
		positions[i] = int32(i + 3)
		segments[i] = 1
		if i >= len(s[0]) {
			segments[i] = 2
		}
	}
	got := goldentest.Logits(t, m.Arch(), m.WeightList(), [][]int32{tokens}, [][]int32{positions}, [][]int32{segments})[0]
	if rel, _ := goldentest.Compare(goldentest.Flatten(got[:len(s[0])]), g.Logits[0]); rel > 1e-4 {
		t.Errorf("first segment: relative error %.2e", rel)
	}
	if rel, _ := goldentest.Compare(goldentest.Flatten(got[len(s[0]):]), g.Logits[2]); rel > 1e-4 {
		t.Errorf("second segment: relative error %.2e", rel)
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
// its gradients w.r.t. dt, dtx, B, C and A: those are ScanOutput's hand-written backward
// (scanForward.grad, with its reverse scan across 1 to 19 blocks), checked against autodiff of
// the unrolled recurrence.
func TestScanOutputEqualsSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, T := range []int{1, 2, 3, scanRadix - 1, scanRadix, scanRadix + 1, 2*scanRadix + 3, 5 * scanRadix, 18*scanRadix + 5} {
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

// ScanOutputFrom (Step's scan: ScanOutput from a cached state h0, returning the last state)
// equals the sequential recurrence from h0 contracted with C, and its last state the recurrence's
// state at step T-1, for lengths inside one block, padded to whole blocks (not a multiple of
// scanRadix) and whole blocks.
func TestScanOutputFromEqualsSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, T := range []int{1, 2, 5, scanRadix, 13, 2 * scanRadix, 3*scanRadix + 5, 5 * scanRadix} {
		const B, D, N = 2, 3, 4
		dt, dtx := make([]float32, B*T*D), make([]float32, B*T*D)
		bm, cm := make([]float32, B*T*N), make([]float32, B*T*N)
		A, h0 := make([]float32, D*N), make([]float32, B*D*N)
		for i := range dt {
			dt[i] = float32(0.05 + 0.5*rng.Float64())
			dtx[i] = float32(rng.NormFloat64())
		}
		for i := range bm {
			bm[i], cm[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		for i := range A {
			A[i] = -float32(0.2 + 2*rng.Float64())
		}
		for i := range h0 {
			h0[i] = float32(3 * rng.NormFloat64())
		}
		args := []any{
			tensors.FromFlatDataAndDimensions(dt, B, T, D), tensors.FromFlatDataAndDimensions(dtx, B, T, D),
			tensors.FromFlatDataAndDimensions(bm, B, T, N), tensors.FromFlatDataAndDimensions(cm, B, T, N),
			tensors.FromFlatDataAndDimensions(A, D, N), tensors.FromFlatDataAndDimensions(h0, B, D, N),
		}
		run := func(f func(dt, dtx, bm, cm, A, h0 *Node) (y, last *Node)) [][]float32 {
			exec, err := NewExec(goldentest.Backend(t), func(in []*Node) []*Node {
				y, last := f(in[0], in[1], in[2], in[3], in[4], in[5])
				return []*Node{y, last}
			})
			if err != nil {
				t.Fatal(err)
			}
			return goldentest.Outputs(t, exec, args...)
		}
		got := run(ScanOutputFrom)
		want := run(func(dt, dtx, bm, cm, A, h0 *Node) (y, last *Node) {
			s := SequentialScan(decay(dt, A), outer(dtx, bm), h0) // [B, T, D, N]
			return contract(s, cm), Reshape(SliceAxis(s, 1, AxisElem(T-1)), B, D, N)
		})
		for i, what := range []string{"y", "last state"} {
			rel, maxAbs := goldentest.Compare(got[i], goldentest.Float64s(want[i]))
			if rel > 1e-5 || math.IsNaN(rel) {
				t.Errorf("T=%d %s: relative error %.2e (max abs %.2e)", T, what, rel, maxAbs)
			}
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
		_, err := lm.NewArchitecture(goldentest.Edited(t, realConfig, c.edit))
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
