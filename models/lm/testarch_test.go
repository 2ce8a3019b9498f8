package lm

// A small but real architecture for testing the machinery of this package independently of
// Gemma and Mamba: token embeddings, a causal running mean over the sequence (within its
// segment), a learned per-position drift, and a linear head:
//
//	h_i = mean(E[tok_0..tok_i]) + pos_i * P
//	logits_i = W h_i
//
// Step keeps the running sum of embeddings as its cache, so cached decoding must equal the
// full recomputation.

import (
	"encoding/json"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
)

const testFamily = "lmtest_mean"

type meanConfig struct {
	ModelType string `json:"model_type"`
	Vocab     int    `json:"vocab_size"`
	Hidden    int    `json:"hidden_size"`
	MaxPos    int    `json:"max_position_embeddings"`
}

type meanArch struct {
	cfg meanConfig
}

// lastCacheLength records the maxLength of the latest CacheShapes call (Generate's bound).
var lastCacheLength atomic.Int64

func init() {
	Register(testFamily, func(raw json.RawMessage) (Architecture, error) {
		var c meanConfig
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("config.json: %w", err)
		}
		if c.Vocab <= 0 {
			return nil, fmt.Errorf("config.json: vocab_size must be positive, got %d", c.Vocab)
		}
		if c.Hidden <= 0 {
			return nil, fmt.Errorf("config.json: hidden_size must be positive, got %d", c.Hidden)
		}
		return &meanArch{cfg: c}, nil
	})
}

func (a *meanArch) Family() string      { return testFamily }
func (a *meanArch) CodeVersion() string { return "1" }
func (a *meanArch) Specs() []ParamSpec {
	V, D := a.cfg.Vocab, a.cfg.Hidden
	return []ParamSpec{
		{Name: "model.embed_tokens.weight", Shape: []int{V, D}},
		{Name: "model.drift", Shape: []int{D}},
		{Name: "lm_head.weight", Shape: []int{V, D}, Aliases: []string{"head.weight"}},
	}
}
func (a *meanArch) VocabSize() int { return a.cfg.Vocab }
func (a *meanArch) MaxLength() int { return a.cfg.MaxPos }

func (a *meanArch) head(p Params, h *graph.Node) *graph.Node {
	return graph.ConvertDType(graph.Einsum("btd,vd->btv", h, p("lm_head.weight")), dtypes.Float32)
}

func (a *meanArch) Logits(p Params, tokens, positions, segments *graph.Node) *graph.Node {
	B, T := tokens.Shape().Dimensions[0], tokens.Shape().Dimensions[1]
	D := a.cfg.Hidden
	emb := graph.Gather(p("model.embed_tokens.weight"), graph.ExpandAxes(tokens, -1)) // [B,T,D]
	dt := emb.DType()
	g := tokens.Graph()
	i := graph.Iota(g, shapes.Make(dtypes.Int32, B, T, T), 1)
	j := graph.Iota(g, shapes.Make(dtypes.Int32, B, T, T), 2)
	segI := graph.BroadcastToDims(graph.ExpandAxes(segments, 2), B, T, T)
	segJ := graph.BroadcastToDims(graph.ExpandAxes(segments, 1), B, T, T)
	mask := graph.LogicalAnd(graph.LogicalAnd(graph.Equal(segI, segJ), graph.GreaterOrEqual(i, j)),
		graph.NotEqual(segJ, graph.ZerosLike(segJ)))
	maskF := graph.ConvertDType(mask, dt)
	count := graph.Max(graph.ReduceSum(maskF, -1), graph.OnesLike(graph.ReduceSum(maskF, -1))) // [B,T]
	sum := graph.Einsum("bij,bjd->bid", maskF, emb)
	mean := graph.Div(sum, graph.BroadcastToDims(graph.ExpandAxes(count, -1), B, T, D))
	drift := graph.Mul(graph.BroadcastToDims(graph.ExpandAxes(graph.ConvertDType(positions, dt), -1), B, T, D),
		graph.BroadcastToDims(graph.Reshape(p("model.drift"), 1, 1, D), B, T, D))
	return a.head(p, graph.Add(mean, drift))
}

func (a *meanArch) CacheShapes(maxLength int, dtype dtypes.DType) []CacheShape {
	lastCacheLength.Store(int64(maxLength))
	return []CacheShape{{Name: "sum", DType: dtype, Dimensions: []int{1, a.cfg.Hidden}}}
}

func (a *meanArch) Step(p Params, cache []*graph.Node, tokens, start *graph.Node) (*graph.Node, []*graph.Node) {
	S, D := tokens.Shape().Dimensions[1], a.cfg.Hidden
	emb := graph.Gather(p("model.embed_tokens.weight"), graph.ExpandAxes(tokens, -1)) // [1,S,D]
	dt := emb.DType()
	g := tokens.Graph()
	prev := graph.BroadcastToDims(graph.Reshape(cache[0], 1, 1, D), 1, S, D)
	sums := graph.Add(graph.CumSum(emb, 1), prev)
	pos := graph.Add(graph.Iota(g, shapes.Make(dtypes.Int32, 1, S), 1), graph.BroadcastToDims(graph.Reshape(start, 1, 1), 1, S))
	posF := graph.BroadcastToDims(graph.ExpandAxes(graph.ConvertDType(pos, dt), -1), 1, S, D)
	count := graph.Add(posF, graph.OnesLike(posF))
	h := graph.Add(graph.Div(sums, count), graph.Mul(posF, graph.BroadcastToDims(graph.Reshape(p("model.drift"), 1, 1, D), 1, S, D)))
	newSum := graph.Add(cache[0], graph.ReduceSum(emb, 1))
	return a.head(p, h), []*graph.Node{newSum}
}

// refLogits computes the model on the host in float64 from float32 weights.
func refLogits(E, drift, W [][]float32, seq []int32) [][]float64 {
	V, D := len(W), len(drift[0])
	sum := make([]float64, D)
	out := make([][]float64, len(seq))
	for t, id := range seq {
		for d := range D {
			sum[d] += float64(E[id][d])
		}
		row := make([]float64, V)
		for v := range V {
			var s float64
			for d := range D {
				h := sum[d]/float64(t+1) + float64(t)*float64(drift[0][d])
				s += float64(W[v][d]) * h
			}
			row[v] = s
		}
		out[t] = row
	}
	return out
}

func logSoftmaxAt(row []float64, target int32) (float64, bool) {
	mx, best := row[0], 0
	for i, x := range row {
		if x > mx {
			mx, best = x, i
		}
	}
	var s float64
	for _, x := range row {
		s += math.Exp(x - mx)
	}
	return row[target] - mx - math.Log(s), best == int(target)
}
