package lm

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
)

type testWeights struct {
	E, drift, W [][]float32
}

func randMatrix(r *rand.Rand, rows, cols int, scale float32) [][]float32 {
	m := make([][]float32, rows)
	for i := range m {
		m[i] = make([]float32, cols)
		for j := range m[i] {
			m[i][j] = (r.Float32()*2 - 1) * scale
		}
	}
	return m
}

func testConfig(V, D, maxPos int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"model_type":%q,"vocab_size":%d,"hidden_size":%d,"max_position_embeddings":%d}`,
		testFamily, V, D, maxPos))
}

// newTestModel builds a random lmtest_mean model in memory.
func newTestModel(t testing.TB, V, D, maxPos int, seed uint64) (*Model, testWeights) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	w := testWeights{E: randMatrix(r, V, D, 1), drift: randMatrix(r, 1, D, 0.05), W: randMatrix(r, V, D, 1)}
	cfg := testConfig(V, D, maxPos)
	arch, err := NewArchitecture(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(arch, cfg, map[string]*tensors.Tensor{
		"model.embed_tokens.weight": tensors.FromValue(w.E),
		"model.drift":               tensors.FromValue(w.drift[0]),
		"head.weight":               tensors.FromValue(w.W), // by alias
	}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m, w
}

func randSeq(r *rand.Rand, n, V int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(r.IntN(V))
	}
	return s
}

func TestLogitsMatchHostComputation(t *testing.T) {
	m, w := newTestModel(t, 11, 6, 0, 1)
	r := rand.New(rand.NewPCG(2, 2))
	seqs := [][]int32{randSeq(r, 5, 11), {}, randSeq(r, 1, 11), randSeq(r, 20, 11), randSeq(r, 17, 11)}
	got, err := m.Logits(seqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(seqs) {
		t.Fatalf("%d results for %d sequences", len(got), len(seqs))
	}
	for i, s := range seqs {
		want := refLogits(w.E, w.drift, w.W, s)
		if len(got[i]) != len(s) {
			t.Fatalf("sequence %d: %d positions, want %d", i, len(got[i]), len(s))
		}
		for tt := range s {
			if len(got[i][tt]) != 11 {
				t.Fatalf("sequence %d position %d: %d logits", i, tt, len(got[i][tt]))
			}
			for v := range 11 {
				if d := math.Abs(float64(got[i][tt][v]) - want[tt][v]); d > 1e-4 {
					t.Fatalf("sequence %d position %d vocab %d: got %v want %v", i, tt, v, got[i][tt][v], want[tt][v])
				}
			}
		}
	}
	if _, err := m.Logits([][]int32{{1, 11}}); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Fatalf("out-of-vocabulary token: err = %v", err)
	}
}

// refScore is the harness semantics computed on the host.
func refScore(w testWeights, maxLen int, r Request) Result {
	full := append(slices.Clone(r.Context), r.Continuation...)
	if maxLen > 0 && len(full) > maxLen+1 {
		full = full[len(full)-maxLen-1:]
	}
	inp := full[:len(full)-1]
	logits := refLogits(w.E, w.drift, w.W, inp)
	res := Result{IsGreedy: true, NumTokens: len(r.Continuation)}
	for j, target := range r.Continuation {
		lp, greedy := logSoftmaxAt(logits[len(inp)-len(r.Continuation)+j], target)
		res.LogProb += lp
		res.IsGreedy = res.IsGreedy && greedy
	}
	return res
}

func TestLogLikelihoodHarnessSemanticsAndBatchInvariance(t *testing.T) {
	const V, maxLen = 9, 24
	m, w := newTestModel(t, V, 5, maxLen, 3)
	r := rand.New(rand.NewPCG(4, 4))
	var reqs []Request
	for q := range 40 {
		ctx := randSeq(r, 1+r.IntN(30), V) // some longer than the window: left-truncated
		if q%4 == 0 {
			// One context, several single-token continuations: they share a forward pass.
			for c := range V {
				reqs = append(reqs, Request{Context: ctx, Continuation: []int32{int32(c)}})
			}
			continue
		}
		reqs = append(reqs, Request{Context: ctx, Continuation: randSeq(r, 1+r.IntN(4), V)})
	}
	// A continuation that is greedy by construction: the argmax of each position.
	ctx := randSeq(r, 6, V)
	seq := slices.Clone(ctx)
	for range 3 {
		l := refLogits(w.E, w.drift, w.W, seq)
		last := l[len(l)-1]
		best := 0
		for v := range last {
			if last[v] > last[best] {
				best = v
			}
		}
		seq = append(seq, int32(best))
	}
	reqs = append(reqs, Request{Context: ctx, Continuation: seq[len(ctx):]})

	var first []Result
	for _, bs := range []int{1, 7, 32} {
		got, err := m.LogLikelihood(reqs, bs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range reqs {
			want := refScore(w, maxLen, r)
			if math.Abs(got[i].LogProb-want.LogProb) > 1e-4 || got[i].IsGreedy != want.IsGreedy || got[i].NumTokens != want.NumTokens {
				t.Fatalf("batch %d request %d: got %+v want %+v", bs, i, got[i], want)
			}
		}
		if first == nil {
			first = got
		} else if !slices.Equal(first, got) {
			t.Fatalf("batch size %d changed results", bs)
		}
	}
	if !first[len(first)-1].IsGreedy {
		t.Fatal("greedy continuation not reported greedy")
	}

	for name, bad := range map[string]Request{
		"empty continuation":   {Context: []int32{1}},
		"outside the vocab":    {Context: []int32{1}, Continuation: []int32{V}},
		"exceeds the model":    {Context: []int32{1}, Continuation: make([]int32, maxLen+1)},
		"nothing to condition": {Continuation: []int32{1}},
		"empty context":        {Continuation: []int32{1, 2, 3}},
	} {
		if _, err := m.LogLikelihood([]Request{bad}, 4); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestGenerateCachedEqualsRecomputation(t *testing.T) {
	const V = 13
	m, _ := newTestModel(t, V, 8, 64, 5)
	prompt := []int32{3, 1, 4, 1, 5}
	got, err := m.Generate(prompt, GenerateOptions{MaxNewTokens: 12})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 12 {
		t.Fatalf("generated %d tokens, want 12", len(got))
	}
	if n := lastCacheLength.Load(); n < int64(len(prompt)+12) || n > 64 {
		t.Fatalf("cache sized %d for %d tokens", n, len(prompt)+12)
	}
	// Greedy decoding recomputed from scratch with full-sequence logits.
	seq := slices.Clone(prompt)
	for i := range 12 {
		l, err := m.Logits([][]int32{seq})
		if err != nil {
			t.Fatal(err)
		}
		last := l[0][len(seq)-1]
		best := 0
		for v := range last {
			if last[v] > last[best] {
				best = v
			}
		}
		if got[i] != int32(best) {
			t.Fatalf("token %d: cached decoding %d, recomputation %d (%v)", i, got[i], best, got)
		}
		seq = append(seq, int32(best))
	}

	// Stop tokens end generation (and are returned).
	stop := got[3]
	idx := slices.Index(got, stop)
	short, err := m.Generate(prompt, GenerateOptions{MaxNewTokens: 12, StopTokens: []int32{stop}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(short, got[:idx+1]) {
		t.Fatalf("with stop token %d: %v, want %v", stop, short, got[:idx+1])
	}

	// Sampling is reproducible by seed and differs across seeds.
	opts := GenerateOptions{MaxNewTokens: 20, Temperature: 1.5, TopP: 0.95, Seed: 7}
	a, err := m.Generate(prompt, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Generate(prompt, opts)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different samples: %v vs %v", a, b)
	}
	differs := false
	for s := uint64(8); s < 12 && !differs; s++ {
		opts.Seed = s
		c, _ := m.Generate(prompt, opts)
		differs = !slices.Equal(a, c)
	}
	if !differs {
		t.Fatal("sampling ignores the seed")
	}

	// The window bounds generation.
	small, _ := newTestModel(t, V, 8, 8, 5)
	out, err := small.Generate(prompt, GenerateOptions{MaxNewTokens: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 8-len(prompt)+1 {
		t.Fatalf("window 8, prompt %d: generated %d tokens", len(prompt), len(out))
	}
	if _, err := small.Generate(make([]int32, 8), GenerateOptions{MaxNewTokens: 1}); err == nil {
		t.Fatal("prompt filling the window: no error")
	}
}

func TestSampleTopP(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	logits := []float32{0, 5, 4.9, -3}
	seen := map[int32]bool{}
	for range 200 {
		seen[sample(logits, 1, 0, 0.5, r)] = true
	}
	// p(1) ~ 0.52 >= 0.5: the nucleus is token 1 alone.
	if len(seen) != 1 || !seen[1] {
		t.Fatalf("top-p 0.5 sampled %v", seen)
	}
	seen = map[int32]bool{}
	for range 500 {
		seen[sample(logits, 1, 0, 0.99, r)] = true
	}
	if !seen[1] || !seen[2] || seen[3] {
		t.Fatalf("top-p 0.99 sampled %v", seen)
	}
	if got := sample([]float32{1, 3, 3}, 0, 0, 0, r); got != 1 {
		t.Fatalf("greedy tie: %d, want the lowest id 1", got)
	}
	// top-k 2 keeps tokens 1 and 2 whatever the temperature; top-k 1 is greedy.
	seen = map[int32]bool{}
	for range 500 {
		seen[sample(logits, 100, 2, 0, r)] = true
	}
	if len(seen) != 2 || !seen[1] || !seen[2] {
		t.Fatalf("top-k 2 sampled %v", seen)
	}
	for range 50 {
		if got := sample(logits, 5, 1, 0, r); got != 1 {
			t.Fatalf("top-k 1 sampled %d", got)
		}
	}
	// top-p applies within the top-k set: with k = 2, p(1) ~ 0.52 of the two.
	seen = map[int32]bool{}
	for range 200 {
		seen[sample(logits, 1, 2, 0.5, r)] = true
	}
	if len(seen) != 1 || !seen[1] {
		t.Fatalf("top-k 2, top-p 0.5 sampled %v", seen)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m, w := newTestModel(t, 10, 4, 32, 9)
	for _, tc := range []struct {
		name  string
		shard int64
		dtype dtypes.DType
	}{
		{"single-f32", 0, dtypes.InvalidDType},
		{"sharded-f32", 100, dtypes.InvalidDType},
		{"sharded-bf16", 100, dtypes.BFloat16},
		{"single-f16", 0, dtypes.Float16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "model")
			tok := t.TempDir()
			os.WriteFile(filepath.Join(tok, "tokenizer.json"), []byte(`{"x":1}`), 0o644)
			if err := m.Save(dir, checkpoint.SaveOptions{MaxShardSize: tc.shard, DType: tc.dtype, TokenizerFrom: tok}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, checkpoint.IndexFile)); (err == nil) != (tc.shard > 0) {
				t.Fatalf("index present = %v, sharding asked = %v", err == nil, tc.shard > 0)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "tokenizer.json")); err != nil || string(b) != `{"x":1}` {
				t.Fatalf("tokenizer.json not copied: %q %v", b, err)
			}
			loadDType := tc.dtype
			if loadDType == dtypes.InvalidDType {
				loadDType = dtypes.Float32
			}
			back, err := Load(dir, LoadOptions{DType: loadDType})
			if err != nil {
				t.Fatal(err)
			}
			if back.Arch().Family() != testFamily || string(back.Config()) != string(m.Config()) {
				t.Fatalf("config changed: %s", back.Config())
			}
			if loadDType == dtypes.Float32 {
				if back.Hash() != m.Hash() {
					t.Fatal("hash changed through save/load")
				}
				for name, wt := range m.Weights() {
					if !tensorsBitEqual(wt, back.Weights()[name]) {
						t.Fatalf("weight %s changed", name)
					}
				}
			} else {
				// Saved in half precision and loaded as such: bit-identical to a direct cast.
				for name, wt := range m.Weights() {
					c, _ := checkpoint.Cast(wt, loadDType)
					if got := back.Weights()[name]; got.DType() != loadDType || !tensorsBitEqual(c, got) {
						t.Fatalf("weight %s: %s, not the cast of the original", name, got.DType())
					}
				}
				// Logits stay float32 and close to the float32 model.
				l, err := back.Logits([][]int32{{1, 2, 3}})
				if err != nil {
					t.Fatal(err)
				}
				want := refLogits(w.E, w.drift, w.W, []int32{1, 2, 3})
				for v := range 10 {
					if d := math.Abs(float64(l[0][2][v]) - want[2][v]); d > 0.1 {
						t.Fatalf("%s logits off by %v", loadDType, d)
					}
				}
			}
		})
	}
}

func tensorsBitEqual(a, b *tensors.Tensor) bool {
	if a.DType() != b.DType() || !slices.Equal(a.Shape().Dimensions, b.Shape().Dimensions) {
		return false
	}
	var x, y []byte
	a.ConstBytes(func(d []byte) { x = slices.Clone(d) })
	b.ConstBytes(func(d []byte) { y = slices.Clone(d) })
	return slices.Equal(x, y)
}

func TestLoadErrorsNameFileAndTensor(t *testing.T) {
	m, _ := newTestModel(t, 10, 4, 32, 9)
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(dir, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wrong shape in config: the tensor and the file are named.
	os.WriteFile(filepath.Join(dir, "config.json"), testConfig(10, 5, 32), 0o644)
	_, err := Load(dir, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "model.safetensors") || !strings.Contains(err.Error(), "model.embed_tokens.weight") {
		t.Fatalf("shape mismatch: %v", err)
	}
	// Unknown family.
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"nope"}`), 0o644)
	if _, err := Load(dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown family: %v", err)
	}
	// Missing tensor.
	ws := m.Weights()
	delete(ws, "model.drift")
	if err := checkpoint.Save(dir, m.Config(), ws, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), `"model.drift"`) {
		t.Fatalf("missing tensor: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "nothing"), LoadOptions{}); err == nil {
		t.Fatal("missing folder: no error")
	}
	if _, err := Load(dir, LoadOptions{DType: dtypes.Int32}); err == nil {
		t.Fatal("int32 compute dtype: no error")
	}
}

func TestSetWeightsAndHash(t *testing.T) {
	m, _ := newTestModel(t, 10, 4, 32, 9)
	h := m.Hash()
	before, _ := m.Logits([][]int32{{1, 2}})
	zero := tensors.FromValue(make([]float32, 4))
	drift := m.Weights()["model.drift"]
	if err := m.SetWeights(map[string]*tensors.Tensor{"model.drift": tensors.FromValue(make([]float32, 5))}); err == nil {
		t.Fatal("wrong shape accepted")
	}
	if err := m.SetWeights(map[string]*tensors.Tensor{"nope": zero}); err == nil {
		t.Fatal("unknown name accepted")
	}
	if m.Hash() != h {
		t.Fatal("rejected update changed the model")
	}
	if err := m.SetWeights(map[string]*tensors.Tensor{"model.drift": tensors.FromValue([]float32{1, 1, 1, 1})}); err != nil {
		t.Fatal(err)
	}
	if m.Hash() == h {
		t.Fatal("hash did not change with the weights")
	}
	after, _ := m.Logits([][]int32{{1, 2}})
	if slices.Equal(before[0][1], after[0][1]) {
		t.Fatal("logits did not change with the weights")
	}
	if err := m.SetWeights(map[string]*tensors.Tensor{"model.drift": drift}); err != nil {
		t.Fatal(err)
	}
	if m.Hash() != h {
		t.Fatal("restoring the weights did not restore the hash")
	}
}

func TestInspect(t *testing.T) {
	m, _ := newTestModel(t, 10, 4, 32, 9)
	dir := filepath.Join(t.TempDir(), "model")
	ws := m.Weights()
	ws["extra.buffer"] = tensors.FromValue([]float32{1})
	if err := checkpoint.Save(dir, m.Config(), ws, checkpoint.SaveOptions{DType: dtypes.BFloat16}); err != nil {
		t.Fatal(err)
	}
	in, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if in.Family != testFamily || in.Parameters != 10*4*2+4 || in.DTypes["BF16"] != 4 || len(in.Problems) != 0 ||
		!slices.Equal(in.Unused, []string{"extra.buffer"}) {
		t.Fatalf("%+v", in)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), testConfig(10, 5, 32), 0o644)
	in, err = Inspect(dir)
	if err != nil || len(in.Problems) != 3 {
		t.Fatalf("3 misshapen tensors: %+v %v", in, err)
	}
}

func TestScoringBudgetSplitsBatches(t *testing.T) {
	m, w := newTestModel(t, 9, 5, 0, 3)
	r := rand.New(rand.NewPCG(5, 5))
	var reqs []Request
	for range 20 {
		reqs = append(reqs, Request{Context: randSeq(r, 1+r.IntN(20), 9), Continuation: randSeq(r, 2, 9)})
	}
	want, err := m.LogLikelihood(reqs, 32)
	if err != nil {
		t.Fatal(err)
	}
	if m.rowsFor(16) < 32 {
		t.Fatalf("default budget fits only %d rows of 16 tokens", m.rowsFor(16))
	}
	m.SetScoringBudget(16 * 9 * 4 * 2) // two rows of 16 tokens
	if got := m.rowsFor(16); got != 2 {
		t.Fatalf("rowsFor(16) = %d, want 2", got)
	}
	if got := m.rowsFor(4096); got != 1 {
		t.Fatalf("rowsFor(4096) = %d, want 1", got)
	}
	got, err := m.LogLikelihood(reqs, 32)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatal("splitting batches changed results")
	}
	l, err := m.Logits([][]int32{reqs[0].Context, reqs[1].Context, reqs[2].Context})
	if err != nil {
		t.Fatal(err)
	}
	ref := refLogits(w.E, w.drift, w.W, reqs[2].Context)
	if math.Abs(float64(l[2][0][0])-ref[0][0]) > 1e-4 {
		t.Fatal("split Logits wrong")
	}
}

// A Hugging Face cache folder: snapshots/<rev>/ holds symlinks into blobs/, refs/main names rev.
func TestLoadHuggingFaceCacheLayout(t *testing.T) {
	m, _ := newTestModel(t, 10, 4, 32, 9)
	saved := filepath.Join(t.TempDir(), "saved")
	if err := m.Save(saved, checkpoint.SaveOptions{MaxShardSize: 100}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "models--org--tiny")
	snap := filepath.Join(root, "snapshots", "0123abcd")
	for _, d := range []string{filepath.Join(root, "blobs"), snap, filepath.Join(root, "refs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(saved)
	for i, e := range entries {
		blob := fmt.Sprintf("blob%d", i)
		data, _ := os.ReadFile(filepath.Join(saved, e.Name()))
		os.WriteFile(filepath.Join(root, "blobs", blob), data, 0o644)
		if err := os.Symlink(filepath.Join("..", "..", "blobs", blob), filepath.Join(snap, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "refs", "main"), []byte("0123abcd"), 0o644)
	back, err := Load(root, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Hash() != m.Hash() {
		t.Fatal("model loaded from the cache layout differs")
	}
	if back.Dir() != snap || m.Dir() != "" {
		t.Fatalf("Dir() = %q, want the snapshot %q", back.Dir(), snap)
	}
}

func TestPrefillPieces(t *testing.T) {
	for n, want := range map[int][]int{1: {1}, 5: {4, 1}, 37: {32, 4, 1}, 64: {64}} {
		if got := prefillPieces(n); !slices.Equal(got, want) {
			t.Errorf("prefillPieces(%d) = %v, want %v", n, got, want)
		}
	}
}

// Many distinct prompt lengths must not exhaust the compiled-graph cache (GoMLX's default
// limit is 64 shapes per executor).
func TestManyPromptLengths(t *testing.T) {
	m, _ := newTestModel(t, 7, 3, 0, 11)
	r := rand.New(rand.NewPCG(6, 6))
	var reqs []Request
	for n := 1; n <= 80; n++ {
		p := randSeq(r, n, 7)
		if _, err := m.Generate(p, GenerateOptions{MaxNewTokens: 1}); err != nil {
			t.Fatalf("prompt length %d: %v", n, err)
		}
		reqs = append(reqs, Request{Context: p, Continuation: randSeq(r, 1+n%3, 7)})
	}
	for _, bs := range []int{1, 3, 5, 32} {
		if _, err := m.LogLikelihood(reqs, bs); err != nil {
			t.Fatal(err)
		}
	}
}

// The trainer's path: its own graph over WeightList through ParamsFor gives Logits' numbers,
// and a graph asking for an unknown parameter fails with an error, not a crash.
func TestParamsForOwnGraph(t *testing.T) {
	m, _ := newTestModel(t, 8, 3, 0, 12)
	seq := []int32{1, 2, 3, 4}
	want, err := m.Logits([][]int32{seq})
	if err != nil {
		t.Fatal(err)
	}
	specs := m.Arch().Specs()
	e, err := graph.NewExec(m.Backend(), func(in []*graph.Node) *graph.Node {
		p := ParamsFor(testFamily, specs, in[:len(specs)])
		return m.Arch().Logits(p, in[len(specs)], in[len(specs)+1], in[len(specs)+2])
	})
	if err != nil {
		t.Fatal(err)
	}
	var args []any
	for _, w := range m.WeightList() {
		args = append(args, w)
	}
	args = append(args, [][]int32{seq}, [][]int32{{0, 1, 2, 3}}, [][]int32{{1, 1, 1, 1}})
	res, err := e.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	got := res[0].Value().([][][]float32)
	for tt := range seq {
		if !slices.Equal(got[0][tt], want[0][tt]) {
			t.Fatalf("position %d differs", tt)
		}
	}
	bad, _ := graph.NewExec(m.Backend(), func(in []*graph.Node) *graph.Node {
		return ParamsFor(testFamily, specs, in)("nope")
	})
	if _, err := m.run(bad); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown parameter: %v", err)
	}
}

// Concurrent callers share one Model (evaluation workers, a server).
func TestConcurrentUse(t *testing.T) {
	m, _ := newTestModel(t, 9, 4, 0, 13)
	reqs := []Request{{Context: []int32{1, 2, 3}, Continuation: []int32{4, 5}}, {Context: []int32{7}, Continuation: []int32{8}}}
	want, err := m.LogLikelihood(reqs, 2)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var err error
			switch g % 3 {
			case 0:
				var got []Result
				if got, err = m.LogLikelihood(reqs, 1+g%2); err == nil && !slices.Equal(got, want) {
					err = fmt.Errorf("goroutine %d: %v, want %v", g, got, want)
				}
			case 1:
				_, err = m.Generate([]int32{1, 2}, GenerateOptions{MaxNewTokens: 3})
			default:
				_ = m.Hash()
				_, err = m.Logits([][]int32{{1, 2, 3}})
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// ScoringShape reports the layout LogLikelihood uses: bucketed width, power-of-two rows per
// run, runs split by the scoring budget.
func TestScoringShape(t *testing.T) {
	m, _ := newTestModel(t, 9, 5, 100, 3)
	for _, c := range []struct{ rows, length, batch, calls, padded, T int }{
		{6, 12, 6, 1, 8, 16},  // 6 rows run as 8, 12 tokens as 16
		{4, 90, 4, 1, 4, 100}, // the bucket (128) is capped at the model window
		{3, 16, 1, 3, 3, 16},  // batch size 1: one run per row
		{0, 16, 4, 0, 0, 0},
	} {
		calls, padded, T := m.ScoringShape(c.rows, c.length, c.batch)
		if calls != c.calls || padded != c.padded || T != c.T {
			t.Errorf("ScoringShape(%d, %d, %d) = %d, %d, %d; want %d, %d, %d", c.rows, c.length, c.batch, calls, padded, T, c.calls, c.padded, c.T)
		}
	}
	m.SetScoringBudget(16 * 9 * 4 * 2) // two rows of 16 tokens per run
	if calls, padded, T := m.ScoringShape(5, 10, 8); calls != 3 || padded != 5 || T != 16 {
		t.Errorf("with a two-row budget: ScoringShape(5, 10, 8) = %d, %d, %d; want 3, 5, 16", calls, padded, T)
	}
}

func TestNumParamsCountsAliasedTensorsOnce(t *testing.T) {
	specs := []ParamSpec{
		{Name: "model.embed_tokens.weight", Shape: []int{10, 4}, Aliases: []string{"lm_head.weight"}},
		{Name: "model.norm.weight", Shape: []int{4}},
		{Name: "scalar", Shape: []int{}},
	}
	if got := NumParams(specs); got != 10*4+4+1 {
		t.Errorf("NumParams = %d, want 45", got)
	}
	if got := NumParams(nil); got != 0 {
		t.Errorf("NumParams(nil) = %d, want 0", got)
	}
}
