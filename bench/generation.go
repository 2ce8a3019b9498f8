package bench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gomlx/compute/shapes"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// DefaultGenPrompts are the prompt lengths the generation phase times when Options.GenPrompts is
// empty: a short prompt, where a decoding step costs about what the prompt-free model does, and
// a long one, where an attention model's step reads a longer cache while a recurrent model's does
// not. Each is lowered to fit the model's window (GenPromptsFor).
var DefaultGenPrompts = []int{16, 256}

// DefaultGenTokens is the default number of tokens each generation run decodes.
const DefaultGenTokens = 32

// Generation is the timing of the generation phase: lm.Model.Generate, the decoding path of
// `perpetual generate`, greedy and without stop tokens, once per prompt length.
type Generation struct {
	// NewTokens is the number of tokens every run generates; DecodeSteps = NewTokens - 1 of them
	// come from single-token decoding steps (the first from the prefill's logits).
	NewTokens   int `json:"new_tokens"`
	DecodeSteps int `json:"decode_steps"`
	// Prompts has one entry per prompt length, in the order asked.
	Prompts []GenerationRun `json:"prompts"`
}

// GenerationRun is one prompt length of the generation phase.
type GenerationRun struct {
	// PromptTokens is the prompt's length (random tokens drawn from the seed).
	PromptTokens int `json:"prompt_tokens"`
	// CachePositions is the length of the cache Generate allocated (lm.Model.GenerateCacheLength)
	// and CacheBytes the size of the cache or recurrent state it holds: an attention model's
	// decoding step reads all of it, so its cost grows with the cache; a recurrent model's
	// state has the same size whatever the prompt.
	CachePositions int   `json:"cache_positions"`
	CacheBytes     int64 `json:"cache_bytes"`
	// Seconds are the timed Generate calls, whole, in order; MedianS their median.
	Seconds []float64 `json:"seconds"`
	MedianS float64   `json:"median_s"`
	// PrefillSeconds are the times from the call to the first new token (the prompt's Step
	// calls, its cache allocated, and the first token chosen), per timed run.
	PrefillSeconds []float64 `json:"prefill_seconds"`
	PrefillMedianS float64   `json:"prefill_median_s"`
	PrefillMinS    float64   `json:"prefill_min_s"`
	PrefillMaxS    float64   `json:"prefill_max_s"`
	// PrefillTokensPerS is PromptTokens / PrefillMedianS.
	PrefillTokensPerS float64 `json:"prefill_tokens_per_s"`
	// DecodeSeconds are the times from the first to the last new token (DecodeSteps steps, each
	// with its host round trip and the argmax), per timed run.
	DecodeSeconds []float64 `json:"decode_seconds"`
	// DecodeMsPerToken is the median over the runs of DecodeSeconds / DecodeSteps in
	// milliseconds, with the fastest and slowest run's; DecodeTokensPerS is 1000 /
	// DecodeMsPerToken.
	DecodeMsPerToken    float64 `json:"decode_ms_per_token"`
	DecodeMsPerTokenMin float64 `json:"decode_ms_per_token_min"`
	DecodeMsPerTokenMax float64 `json:"decode_ms_per_token_max"`
	DecodeTokensPerS    float64 `json:"decode_tokens_per_s"`
	Memory              Memory  `json:"memory"`
}

// GenPromptsFor is the list of prompt lengths the generation phase times on arch: o.GenPrompts
// when given, each checked to leave room for o.GenTokens in the window; otherwise
// DefaultGenPrompts, each lowered to the window less o.GenTokens (duplicates dropped). Errors
// name the flag to change.
func (o Options) GenPromptsFor(arch lm.Architecture) ([]int, error) {
	limit := arch.MaxLength()
	if len(o.GenPrompts) > 0 {
		for _, p := range o.GenPrompts {
			if limit > 0 && p+o.GenTokens > limit {
				return nil, fmt.Errorf("bench: --gen-prompts %d with --gen-tokens %d needs %d positions, past the %s model's maximum length %d (max_position_embeddings); use a prompt of at most %d tokens or fewer --gen-tokens",
					p, o.GenTokens, p+o.GenTokens, arch.Family(), limit, limit-o.GenTokens)
			}
		}
		return o.GenPrompts, nil
	}
	if limit > 0 && limit-o.GenTokens < 1 {
		return nil, fmt.Errorf("bench: --gen-tokens %d leaves no room for a prompt in the %s model's maximum length %d (max_position_embeddings); use --gen-tokens %d or less",
			o.GenTokens, arch.Family(), limit, limit-1)
	}
	var out []int
	for _, p := range DefaultGenPrompts {
		if limit > 0 {
			p = min(p, limit-o.GenTokens)
		}
		if len(out) == 0 || out[len(out)-1] != p {
			out = append(out, p)
		}
	}
	return out, nil
}

// runGeneration times Generate on each prompt length: o.Warmup untimed calls (the first compiles
// the prefill pieces and the decoding step for this cache length), then o.Repeats timed ones.
// The production call is timed as is; OnToken, which Generate calls as each token is chosen,
// only reads the clock, so the split into prefill and decoding needs no copy of the loop.
func runGeneration(model *lm.Model, o Options, prompts []int, progress func(string, ...any)) (*Generation, error) {
	arch := model.Arch()
	g := &Generation{NewTokens: o.GenTokens, DecodeSteps: o.GenTokens - 1}
	for i, n := range prompts {
		progress("bench: generation, %d-token prompt + %d new tokens (Generate, greedy)", n, o.GenTokens)
		rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x6e6+uint64(i)))
		prompt := make([]int32, n)
		for j := range prompt {
			prompt[j] = int32(rng.IntN(arch.VocabSize()))
		}
		var prefill, decode []float64
		p, err := timePhase(o, func() error {
			var first, last time.Time
			got := 0
			t0 := time.Now()
			out, err := model.Generate(prompt, lm.GenerateOptions{MaxNewTokens: o.GenTokens, OnToken: func(int32) bool {
				last = time.Now()
				if got == 0 {
					first = last
				}
				got++
				return true
			}})
			if err != nil {
				return err
			}
			if len(out) != o.GenTokens || got != o.GenTokens {
				return fmt.Errorf("bench: generation from a %d-token prompt stopped after %d of %d tokens", n, len(out), o.GenTokens)
			}
			prefill = append(prefill, first.Sub(t0).Seconds())
			decode = append(decode, last.Sub(first).Seconds())
			return nil
		})
		if err != nil {
			return nil, err
		}
		// timePhase ran the warm-up calls first; keep the timed ones.
		prefill, decode = prefill[o.Warmup:], decode[o.Warmup:]
		r := GenerationRun{PromptTokens: n, CachePositions: model.GenerateCacheLength(n, o.GenTokens),
			Seconds: p.Seconds, MedianS: p.MedianS, PrefillSeconds: prefill, DecodeSeconds: decode, Memory: p.Memory}
		for _, cs := range arch.CacheShapes(r.CachePositions, model.DType()) {
			r.CacheBytes += int64(shapes.Make(cs.DType, cs.Dimensions...).Memory())
		}
		r.PrefillMedianS, r.PrefillMinS, r.PrefillMaxS = summarize(prefill)
		r.PrefillTokensPerS = float64(n) / r.PrefillMedianS
		perToken := make([]float64, len(decode))
		for k, s := range decode {
			perToken[k] = 1000 * s / float64(g.DecodeSteps)
		}
		r.DecodeMsPerToken, r.DecodeMsPerTokenMin, r.DecodeMsPerTokenMax = summarize(perToken)
		r.DecodeTokensPerS = 1000 / r.DecodeMsPerToken
		g.Prompts = append(g.Prompts, r)
	}
	return g, nil
}
