package lm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// GenerateOptions controls Generate.
type GenerateOptions struct {
	// MaxNewTokens is the most tokens to generate (must be >= 1).
	MaxNewTokens int
	// Temperature scales logits before sampling; 0 means greedy (argmax, lowest id on ties).
	Temperature float64
	// TopP keeps the smallest set of most likely tokens whose probability reaches TopP
	// (nucleus sampling); 0 or >= 1 keeps all.
	TopP float64
	// TopK keeps only the TopK most likely tokens before TopP applies; 0 keeps all.
	TopK int
	// Seed seeds the sampler: equal seeds give equal samples.
	Seed uint64
	// StopTokens end generation; a generated stop token is included in the result.
	StopTokens []int32
	// OnToken, when set, receives every generated token as soon as it is chosen (streaming);
	// returning false ends generation after that token (e.g. a stop string was completed).
	OnToken func(id int32) bool
}

// Generate continues prompt and returns the new tokens only. It prefills the prompt with
// Architecture.Step in a few power-of-two pieces, then decodes one token per Step with the
// cache kept on the device; the cache is sized for len(prompt)+MaxNewTokens (rounded up to
// limit recompilation).
func (m *Model) Generate(prompt []int32, opts GenerateOptions) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("Generate: empty prompt")
	}
	if opts.MaxNewTokens < 1 {
		return nil, fmt.Errorf("Generate: MaxNewTokens must be >= 1, got %d", opts.MaxNewTokens)
	}
	if opts.Temperature < 0 || math.IsNaN(opts.Temperature) {
		return nil, fmt.Errorf("Generate: invalid Temperature %v", opts.Temperature)
	}
	if opts.TopK < 0 || opts.TopP < 0 || math.IsNaN(opts.TopP) {
		return nil, fmt.Errorf("Generate: TopK (%d) and TopP (%v) must not be negative", opts.TopK, opts.TopP)
	}
	if err := m.checkTokens("Generate: prompt", prompt); err != nil {
		return nil, err
	}
	limit := m.arch.MaxLength()
	if limit > 0 && len(prompt) >= limit {
		return nil, fmt.Errorf("Generate: prompt of %d tokens leaves no room in the model window %d", len(prompt), limit)
	}
	cacheLen := m.GenerateCacheLength(len(prompt), opts.MaxNewTokens)
	specs := m.arch.CacheShapes(cacheLen, m.dtype)
	cache := make([]any, len(specs))
	for i, cs := range specs {
		cache[i] = tensors.FromShape(shapes.Make(cs.DType, cs.Dimensions...))
	}
	nc := len(specs)
	e, err := m.exec(fmt.Sprintf("step-%d", nc), func(p Params, in []*graph.Node) []*graph.Node {
		logits, newCache := m.arch.Step(p, in[:nc], in[nc], in[nc+1])
		if len(newCache) != nc {
			panic(fmt.Sprintf("Step returned %d cache tensors, CacheShapes has %d", len(newCache), nc))
		}
		// Only the last position's logits leave the device.
		S := logits.Shape().Dimensions[1]
		last := graph.Slice(logits, graph.AxisRange(), graph.AxisRange(S-1, S))
		last = graph.Reshape(last, m.arch.VocabSize())
		if last.DType() != dtypes.Float32 {
			last = graph.ConvertDType(last, dtypes.Float32)
		}
		return append([]*graph.Node{last}, newCache...)
	})
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
	// Prefill in power-of-two pieces (e.g. 37 = 32+4+1 tokens): Step's contract makes the result
	// independent of the chunking, and it bounds the number of compiled graphs by log2 of the
	// longest prompt instead of one per distinct prompt length.
	var logits []float32
	pos := 0
	for _, piece := range prefillPieces(len(prompt)) {
		if logits, err = m.step(e, cache, prompt[pos:pos+piece], pos); err != nil {
			return nil, err
		}
		pos += piece
	}
	var out []int32
	for {
		next := sample(logits, opts.Temperature, opts.TopK, opts.TopP, rng)
		out = append(out, next)
		more := opts.OnToken == nil || opts.OnToken(next)
		// Feeding next needs position pos inside the window; the cache holds total >= pos+1
		// positions whenever another token is wanted.
		if !more || len(out) >= opts.MaxNewTokens || slices.Contains(opts.StopTokens, next) || (limit > 0 && pos >= limit) {
			break
		}
		if logits, err = m.step(e, cache, []int32{next}, pos); err != nil {
			return nil, err
		}
		pos++
	}
	return out, nil
}

// GenerateCacheLength is the number of positions of the cache Generate allocates for a prompt
// of promptLen tokens and maxNewTokens new ones: their sum capped at the model's window, rounded
// up to a length bucket so that nearby lengths share compiled graphs. An attention model's
// decoding step reads the whole cache (it masks the unused tail), so its cost follows this
// length, not the position; a recurrent model's state does not depend on it. perpetual bench
// reports it next to the decoding speed.
func (m *Model) GenerateCacheLength(promptLen, maxNewTokens int) int {
	limit := m.arch.MaxLength()
	total := promptLen + maxNewTokens
	if limit > 0 {
		total = min(total, limit)
	}
	return bucketLength(total, limit)
}

// sample picks the next token: argmax when temperature is 0, otherwise a draw from
// softmax(logits/temperature) restricted to the topK most likely tokens (0: all), then to the
// top-p nucleus.
func sample(logits []float32, temperature float64, topK int, topP float64, rng *rand.Rand) int32 {
	if temperature == 0 {
		best := 0
		for i, x := range logits {
			if x > logits[best] {
				best = i
			}
		}
		return int32(best)
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	mx := float64(logits[idx[0]])
	probs := make([]float64, len(idx))
	var sum float64
	for r, i := range idx {
		probs[r] = math.Exp((float64(logits[i]) - mx) / temperature)
		sum += probs[r]
	}
	keep := len(idx)
	if topK > 0 && topK < keep {
		keep = topK
		sum = 0
		for r := range keep {
			sum += probs[r]
		}
	}
	if topP > 0 && topP < 1 {
		var c float64
		for r := range keep {
			c += probs[r] / sum
			if c >= topP {
				keep = r + 1
				break
			}
		}
	}
	var kept float64
	for r := range keep {
		kept += probs[r]
	}
	u := rng.Float64() * kept
	for r := range keep {
		u -= probs[r]
		if u < 0 {
			return int32(idx[r])
		}
	}
	return int32(idx[keep-1])
}

// step runs one Step on chunk at position pos, replacing cache in place with the new cache and
// returning the last position's float32 logits.
func (m *Model) step(e *graph.Exec, cache []any, chunk []int32, pos int) ([]float32, error) {
	args := append(slices.Clone(cache), tensors.FromFlatDataAndDimensions(slices.Clone(chunk), 1, len(chunk)), int32(pos))
	res, err := m.run(e, args...)
	if err != nil {
		return nil, err
	}
	for i := range cache {
		cache[i] = res[1+i]
	}
	return tensors.CopyFlatData[float32](res[0])
}

// prefillPieces splits n into decreasing powers of two (the binary digits of n).
func prefillPieces(n int) []int {
	var pieces []int
	for p := 1 << 30; p > 0; p >>= 1 {
		if n&p != 0 {
			pieces = append(pieces, p)
		}
	}
	return pieces
}
