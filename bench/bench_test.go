package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/backend"
	"github.com/perpetual-ml/perpetual/models/lm"

	_ "github.com/perpetual-ml/perpetual/models/gemma"
	_ "github.com/perpetual-ml/perpetual/models/mamba"
)

// tinyGemma: vocabulary 512, hidden 64, MLP 128, 2 layers, 4 heads of 16 sharing one KV head.
const tinyGemma = `{"model_type":"gemma","vocab_size":512,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
"num_attention_heads":4,"num_key_value_heads":1,"head_dim":16,"max_position_embeddings":64,"hidden_act":"gelu"}`

// tinyMamba: vocabulary 512, hidden 32, d_inner 64, state 8, conv 4, dt rank 2, 2 layers.
const tinyMamba = `{"model_type":"mamba","vocab_size":512,"hidden_size":32,"num_hidden_layers":2,"state_size":8,
"expand":2,"conv_kernel":4,"time_step_rank":"auto"}`

func TestOptionsValidate(t *testing.T) {
	good := Options{Batch: 2, Length: 16, Warmup: 1, Repeats: 1, Matmul: 64}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for _, c := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.Batch = 0 }, "--batch 0"},
		{func(o *Options) { o.Length = 1 }, "--length 1"},
		{func(o *Options) { o.Warmup = 0 }, "--warmup 0"},
		{func(o *Options) { o.Repeats = 0 }, "--repeats 0"},
		{func(o *Options) { o.Matmul = -1 }, "--matmul -1"},
		{func(o *Options) { o.Phases = []string{"scoring", "decoding"} }, `unknown phase "decoding"`},
		{func(o *Options) { o.Phases = []string{PhaseGeneration} }, "--gen-tokens 0"},
		{func(o *Options) { o.GenTokens = 1 }, "--gen-tokens 1"},
		{func(o *Options) { o.GenPrompts = []int{16, 0} }, "--gen-prompts 0"},
	} {
		o := good
		c.edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", err, c.want)
		}
	}
	arch, err := lm.NewArchitecture(json.RawMessage(tinyGemma))
	if err != nil {
		t.Fatal(err)
	}
	o := good
	o.Length = 65
	if err := o.ValidateFor(arch); err == nil || !strings.Contains(err.Error(), "maximum length 64") {
		t.Errorf("a length past the window: error %v", err)
	}
}

// The generation phase is opt-in, ignores --batch and --length, and fits its prompt lengths to
// the window: the defaults are lowered, lengths given are refused.
func TestGenPromptsFor(t *testing.T) {
	if (Options{}).wants(PhaseGeneration) || !(Options{}).wants(PhaseTraining) {
		t.Error("no Phases must mean scoring and training only")
	}
	gemma, err := lm.NewArchitecture(json.RawMessage(tinyGemma)) // window 64
	if err != nil {
		t.Fatal(err)
	}
	mamba, err := lm.NewArchitecture(json.RawMessage(tinyMamba)) // no window
	if err != nil {
		t.Fatal(err)
	}
	gen := Options{Warmup: 1, Repeats: 1, Length: 1000, Phases: []string{PhaseGeneration}}
	for _, c := range []struct {
		arch    lm.Architecture
		prompts []int
		tokens  int
		want    []int
		err     string
	}{
		{gemma, nil, 32, []int{16, 32}, ""},
		{gemma, nil, 60, []int{4}, ""},
		{gemma, nil, 64, nil, "--gen-tokens 64"},
		{gemma, []int{8, 56}, 8, []int{8, 56}, ""},
		{gemma, []int{8, 57}, 8, nil, "--gen-prompts 57 with --gen-tokens 8"},
		{mamba, nil, 32, []int{16, 256}, ""},
		{mamba, []int{5000}, 100, []int{5000}, ""},
	} {
		o := gen
		o.GenPrompts, o.GenTokens = c.prompts, c.tokens
		got, err := o.GenPromptsFor(c.arch)
		if vErr := o.ValidateFor(c.arch); (vErr == nil) != (err == nil) {
			t.Errorf("%s %v + %d: ValidateFor says %v, GenPromptsFor %v", c.arch.Family(), c.prompts, c.tokens, vErr, err)
		}
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %v + %d: error %v, want one containing %q", c.arch.Family(), c.prompts, c.tokens, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s %v + %d: %v, %v; want %v", c.arch.Family(), c.prompts, c.tokens, got, err, c.want)
		}
	}
}

// phaseJSON is a Phase as read back from the JSON report.
type phaseJSON struct {
	Tokens         int
	Seconds        []float64
	MedianS        float64 `json:"median_s"`
	TokensPerS     float64 `json:"tokens_per_s"`
	FLOPs          float64
	GFLOPS         float64
	Utilisation    float64
	CPUSeconds     []float64 `json:"cpu_seconds"`
	CPUGFLOPS      float64   `json:"cpu_gflops"`
	CPUUtilisation float64   `json:"cpu_utilisation"`
	Memory         struct {
		PeakRSS int64 `json:"peak_rss_bytes"`
		GoSys   int64 `json:"go_sys_bytes"`
	}
	Calls, Width int
	PaddedRows   int `json:"padded_rows"`
	Targets      int
	LossFirst    float64 `json:"loss_first"`
	Estimated    int64   `json:"estimated_bytes"`
}

// A tiny random Gemma through both phases, one timed run each: the JSON report has sane
// numbers, and the FLOPs follow the documented formula.
func TestRunTinyGemma(t *testing.T) {
	m, err := RandomModel(json.RawMessage(tinyGemma), 1, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	r, err := Run(m, "tiny.json", Options{Batch: 2, Length: 32, Warmup: 1, Repeats: 1, Matmul: 64, Seed: 1, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Date  string
		Model struct {
			Family string
			Params int64
		}
		Matmul *struct {
			N            int
			GFLOPS       float64
			MedianGFLOPS float64 `json:"median_gflops"`
			Seconds      []float64
			CPUGFLOPS    float64 `json:"cpu_gflops"`
			Layout       string
			Layouts      []struct {
				Layout       string
				GFLOPS       float64
				MedianGFLOPS float64 `json:"median_gflops"`
				Seconds      []float64
			}
		} `json:"matmul_peak"`
		Scoring, Training *phaseJSON
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339, got.Date); err != nil {
		t.Errorf("date %q: %v", got.Date, err)
	}
	if got.Model.Family != "gemma" || got.Model.Params != int64(m.Arch().(interface{ NumParams() int }).NumParams()) {
		t.Errorf("model %+v", got.Model)
	}
	if got.Matmul == nil || got.Matmul.N != 64 || !(got.Matmul.GFLOPS > 0) || !(got.Matmul.MedianGFLOPS > 0) || len(got.Matmul.Seconds) != 1 {
		t.Fatalf("matmul peak %+v", got.Matmul)
	}
	if l := got.Matmul.Layouts; len(l) != 2 || l[0].Layout != MatmulNonTransposed || l[1].Layout != MatmulTransposed ||
		got.Matmul.GFLOPS != max(l[0].GFLOPS, l[1].GFLOPS) || len(l[0].Seconds) != 1 || len(l[1].Seconds) != 1 {
		t.Fatalf("matmul layouts %+v (peak %v from %q)", l, got.Matmul.GFLOPS, got.Matmul.Layout)
	}
	// Per token and layer: q 2·64·64 = 8,192, k and v 2·2·64·16 = 4,096, o 8,192, MLP
	// 3·2·64·128 = 49,152: 69,632 x 2 layers = 139,264, head 2·64·512 = 65,536; 204,800 x 32
	// tokens = 6,553,600, attention 2·2·64·32²·2 = 524,288: 7,077,888 per row of 32.
	const row = 7_077_888.0
	if got.Scoring == nil || got.Training == nil {
		t.Fatalf("missing phase in %s", raw)
	}
	if s := got.Scoring; s.FLOPs != 2*row || s.Calls != 1 || s.PaddedRows != 2 || s.Width != 32 || s.Estimated <= 0 {
		t.Errorf("scoring FLOPs %.0f (want %.0f), calls %d, rows %d, width %d, estimate %d", s.FLOPs, 2*row, s.Calls, s.PaddedRows, s.Width, s.Estimated)
	}
	if tr := got.Training; tr.FLOPs != 3*2*row || tr.Targets != 2*(32-2) || !(tr.LossFirst > 0) || tr.Estimated <= 0 {
		t.Errorf("training FLOPs %.0f (want %.0f), targets %d (want 60), first loss %v, estimate %d", tr.FLOPs, 3*2*row, tr.Targets, tr.LossFirst, tr.Estimated)
	}
	for name, p := range map[string]*phaseJSON{"scoring": got.Scoring, "training": got.Training} {
		if p.Tokens != 64 || len(p.Seconds) != 1 || !(p.MedianS > 0) {
			t.Errorf("%s: tokens %d, seconds %v", name, p.Tokens, p.Seconds)
		}
		if want := 64 / p.MedianS; !(p.TokensPerS > 0) || p.TokensPerS != want {
			t.Errorf("%s: tokens/s %v, want tokens / median = %v", name, p.TokensPerS, want)
		}
		if want := p.FLOPs / p.MedianS / 1e9; p.GFLOPS != want || p.Utilisation != want/got.Matmul.GFLOPS {
			t.Errorf("%s: %v GFLOP/s (want %v), utilisation %v", name, p.GFLOPS, want, p.Utilisation)
		}
		if len(p.CPUSeconds) != 1 || !(p.CPUSeconds[0] > 0) {
			t.Errorf("%s: CPU seconds %v", name, p.CPUSeconds)
		} else if want := p.FLOPs / p.CPUSeconds[0] / 1e9; p.CPUGFLOPS != want || !(got.Matmul.CPUGFLOPS > 0) || p.CPUUtilisation != want/got.Matmul.CPUGFLOPS {
			t.Errorf("%s: %v GFLOP per CPU second (want %v), of the probe's %v: %v", name, p.CPUGFLOPS, want, got.Matmul.CPUGFLOPS, p.CPUUtilisation)
		}
		if p.Memory.PeakRSS <= 0 || p.Memory.GoSys <= 0 {
			t.Errorf("%s: memory %+v", name, p.Memory)
		}
	}
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scoring", "training", "GFLOP/s", "matmul:   float32 64 x 64 x 64, 8 chained products per run", "by layout", "nontransposed", "1 call(s), 2 row(s) of 32 tokens", "estimate", "lm.EstimateMemory"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if !strings.Contains(progress.String(), "training step 2 x 32") {
		t.Errorf("progress: %q", progress.String())
	}
}

// One phase on a tiny Mamba: the other is absent from the report, and the training FLOPs are 3
// x the forward of the documented formula.
func TestRunTrainingOnlyMamba(t *testing.T) {
	m, err := RandomModel(json.RawMessage(tinyMamba), 1, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(m, "tiny-mamba.json", Options{Batch: 1, Length: 48, Warmup: 1, Repeats: 2, Phases: []string{PhaseTraining}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Scoring != nil || r.Matmul != nil {
		t.Errorf("scoring %v and matmul %v were not asked for", r.Scoring, r.Matmul)
	}
	// Per token and layer (d 32, DI 64, N 8, R 2, K 4): in_proj 2·32·128 = 8,192, conv 2·64·4 =
	// 512, x_proj 2·64·18 = 2,304, dt_proj 2·2·64 = 256, out_proj 2·64·32 = 4,096, scan 6·64·8
	// = 3,072: 18,432 x 2 layers = 36,864, head 2·32·512 = 32,768; 69,632 per token x 48 tokens.
	if want := 3 * 69_632.0 * 48; r.Training.FLOPs != want {
		t.Errorf("training FLOPs %.0f, want %.0f", r.Training.FLOPs, want)
	}
	if p := r.Training; len(p.Seconds) != 2 || p.Utilisation != 0 || !(p.GFLOPS > 0) || p.MinS > p.MedianS || p.MedianS > p.MaxS {
		t.Errorf("training phase %+v", p)
	}
}

// A training phase whose estimate exceeds the memory limit is refused before the weights are
// copied, with the numbers and what to change.
func TestTrainingMemoryLimit(t *testing.T) {
	m, err := RandomModel(json.RawMessage(tinyGemma), 1, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(m, "tiny.json", Options{Batch: 2, Length: 32, Warmup: 1, Repeats: 1, MemoryLimit: 1 << 20, Phases: []string{PhaseTraining}})
	if err == nil || !strings.Contains(err.Error(), "training step needs about") || !strings.Contains(err.Error(), "--phases scoring") {
		t.Errorf("error %v", err)
	}
	o := Options{Batch: 2, Length: 32, Warmup: 1, Repeats: 1, MemoryLimit: -1}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Errorf("negative limit: %v", err)
	}
}

func TestRandomModelIsSeeded(t *testing.T) {
	a, err := RandomModel(json.RawMessage(tinyMamba), 1, lm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomModel(json.RawMessage(tinyMamba), 1, lm.LoadOptions{})
	c, _ := RandomModel(json.RawMessage(tinyMamba), 2, lm.LoadOptions{})
	first := func(m *lm.Model) []float32 { return tensors.MustCopyFlatData[float32](m.WeightList()[0])[:8] }
	if fa, fb, fc := first(a), first(b), first(c); !equal(fa, fb) || equal(fa, fc) {
		t.Errorf("seed 1 twice: %v, %v; seed 2: %v", fa, fb, fc)
	}
	if _, err := RandomModel(json.RawMessage(`{"model_type":"gpt9"}`), 1, lm.LoadOptions{}); err == nil || !strings.Contains(err.Error(), "gpt9") {
		t.Errorf("unknown family: %v", err)
	}
}

func equal(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestSummarizeAndRequests(t *testing.T) {
	if m, lo, hi := summarize([]float64{3, 1, 2}); m != 2 || lo != 1 || hi != 3 {
		t.Errorf("odd count: %v %v %v", m, lo, hi)
	}
	if m, _, _ := summarize([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("even count: median %v, want 2.5", m)
	}
	reqs, err := scoringRequests(4, 3, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range reqs {
		key := fmt.Sprint(r.Context)
		if len(r.Context) != 3 || len(r.Continuation) != 1 || seen[key] {
			t.Errorf("request %+v: want a context of 3 tokens unlike the others' and one continuation token", r)
		}
		seen[key] = true
	}
	if _, err := scoringRequests(5, 2, 2, 1); err == nil || !strings.Contains(err.Error(), "distinct rows") {
		t.Errorf("5 distinct rows of 2 tokens from 2 ids: %v", err)
	}
	if got := commas(1234567.4); got != "1,234,567" {
		t.Errorf("commas: %s", got)
	}
}

// The matmul probe times both of the Go backend's layouts, takes the faster as the peak and
// records which. 32 and 64 take the backend's unpacked kernel, 192 (7 M multiply-adds, about a
// millisecond) its packed GEMM, whose products the probe's check must accept too. Every run
// counts MatmulProducts products of 2·n³ FLOPs: the rates are that over the run's seconds.
func TestMeasureMatmulLayouts(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	if MatmulProducts < 4 {
		t.Errorf("MatmulProducts = %d: one run of the default 1024^3 probe should last well over 10 ms", MatmulProducts)
	}
	for _, n := range []int{32, 64, 192} {
		p, err := MeasureMatmul(b, n, 1, 3)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		flops := 2 * float64(MatmulProducts) * float64(n*n*n)
		if p.N != n || p.Products != MatmulProducts || p.FLOPs != flops || len(p.Layouts) != len(MatmulLayouts) {
			t.Fatalf("n=%d: %+v, want %d products of 2·n³, %v FLOPs per run", n, p, MatmulProducts, flops)
		}
		best := -1
		for i, l := range p.Layouts {
			if l.Layout != MatmulLayouts[i] || len(l.Seconds) != 3 || !(l.GFLOPS > 0) || !(l.MedianGFLOPS > 0) || l.MedianGFLOPS > l.GFLOPS {
				t.Errorf("n=%d: layout %d: %+v", n, i, l)
			}
			for _, s := range l.Seconds {
				if !(s > 0) {
					t.Errorf("n=%d, %s: seconds %v", n, l.Layout, l.Seconds)
				}
			}
			if want := flops / slices.Min(l.Seconds) / 1e9; l.GFLOPS != want {
				t.Errorf("n=%d, %s: %v GFLOP/s, want %d·2·n³ / fastest run = %v", n, l.Layout, l.GFLOPS, MatmulProducts, want)
			}
			if want := flops / median(l.Seconds) / 1e9; l.MedianGFLOPS != want {
				t.Errorf("n=%d, %s: median %v GFLOP/s, want %v", n, l.Layout, l.MedianGFLOPS, want)
			}
			if len(l.CPUSeconds) != len(l.Seconds) || !(l.CPUGFLOPS > 0) || !(l.Cores >= 0) {
				t.Errorf("n=%d, %s: CPU seconds %v, %v GFLOP per CPU second, %v cores", n, l.Layout, l.CPUSeconds, l.CPUGFLOPS, l.Cores)
			} else if want := flops / median(l.CPUSeconds) / 1e9; l.CPUGFLOPS != want {
				t.Errorf("n=%d, %s: %v GFLOP per CPU second, want %v", n, l.Layout, l.CPUGFLOPS, want)
			}
			if best < 0 || l.GFLOPS > p.Layouts[best].GFLOPS {
				best = i
			}
		}
		if w := p.Layouts[best]; p.Layout != w.Layout || p.GFLOPS != w.GFLOPS || p.MedianGFLOPS != w.MedianGFLOPS || !slices.Equal(p.Seconds, w.Seconds) ||
			p.CPUGFLOPS != w.CPUGFLOPS || p.Cores != w.Cores {
			t.Errorf("n=%d: peak %q %v (median %v), want the fastest layout %+v", n, p.Layout, p.GFLOPS, p.MedianGFLOPS, w)
		}
	}
	for _, c := range []struct{ n, warmup, repeats int }{{0, 1, 1}, {8, 1, 0}, {8, -1, 1}} {
		if _, err := MeasureMatmul(b, c.n, c.warmup, c.repeats); err == nil || !strings.Contains(err.Error(), "matmul probe") {
			t.Errorf("MeasureMatmul(n %d, warm-up %d, repeats %d): %v", c.n, c.warmup, c.repeats, err)
		}
	}
	if _, err := measureMatmul(b, 8, 0, 1, 1); err == nil || !strings.Contains(err.Error(), "products 0") {
		t.Errorf("no products: %v", err)
	}
	// The probe's graph computes the chain its check expects, in both layouts; the check tells
	// the layouts apart (x·yᵀ·yᵀ read as x·y·y fails) and counts the products (a chain of 2
	// read as one of 1 or 3 fails).
	x, y := make([]float32, 64*64), make([]float32, 64*64)
	for i := range x {
		x[i], y[i] = float32(i%7)-3, (float32(i%5)-2)/8
	}
	for _, layout := range MatmulLayouts {
		e, err := matmulExec(b, layout, 2)
		if err != nil {
			t.Fatal(err)
		}
		out := e.MustExec(tensors.FromFlatDataAndDimensions(x, 64, 64), tensors.FromFlatDataAndDimensions(y, 64, 64))[0]
		if err := checkMatmul(layout, 64, 2, x, y, out); err != nil {
			t.Errorf("%s, 2 products, checked as itself: %v", layout, err)
		}
		for _, products := range []int{1, 3} {
			if err := checkMatmul(layout, 64, products, x, y, out); err == nil {
				t.Errorf("%s: 2 products passed the check of %d", layout, products)
			}
		}
		other := MatmulLayouts[0]
		if layout == other {
			other = MatmulLayouts[1]
		}
		if err := checkMatmul(other, 64, 2, x, y, out); err == nil {
			t.Errorf("%s passed the check of %s", layout, other)
		}
	}
	if _, err := matmulExec(b, "diagonal", 1); err == nil || !strings.Contains(err.Error(), `unknown layout "diagonal"`) {
		t.Errorf("unknown layout: %v", err)
	}
}

func median(xs []float64) float64 {
	m, _, _ := summarize(xs)
	return m
}

// checkMatmul accepts the right product in each layout and names a wrong one.
func TestCheckMatmul(t *testing.T) {
	// x = [[1 2] [3 4]], y = [[5 6] [7 8]]: x·y = [[19 22] [43 50]], x·yᵀ = [[17 23] [39 53]].
	x, y := []float32{1, 2, 3, 4}, []float32{5, 6, 7, 8}
	for layout, prod := range map[string][]float32{MatmulNonTransposed: {19, 22, 43, 50}, MatmulTransposed: {17, 23, 39, 53}} {
		if err := checkMatmul(layout, 2, 1, x, y, tensors.FromFlatDataAndDimensions(prod, 2, 2)); err != nil {
			t.Errorf("%s: %v", layout, err)
		}
		wrong := slices.Clone(prod)
		wrong[3]++
		if err := checkMatmul(layout, 2, 1, x, y, tensors.FromFlatDataAndDimensions(wrong, 2, 2)); err == nil || !strings.Contains(err.Error(), layout+" layout") {
			t.Errorf("%s: a wrong product passed: %v", layout, err)
		}
	}
	if err := checkMatmul(MatmulTransposed, 2, 1, x, y, tensors.FromFlatDataAndDimensions([]float32{1, 2}, 1, 2)); err == nil || !strings.Contains(err.Error(), "shaped") {
		t.Errorf("wrong shape: %v", err)
	}
}
