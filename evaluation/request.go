package evaluation

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/perpetual-ml/perpetual/models/lm"
)

// Tokenizer is what the evaluator needs from models/tokenizer: plain encoding without special
// tokens. BOS is added by Encoder according to the model, as the harness does.
type Tokenizer interface {
	Encode(text string) []int32
}

// Request is one log-likelihood query: the model sees Context then Continuation and reports the
// summed log-probability of Continuation's tokens (lm.Request, so *lm.Model is a Scorer as is).
type Request = lm.Request

// Result is a scored Request (lm.Result).
type Result = lm.Result

// Scorer computes log-likelihoods; *lm.Model satisfies it, as does lm.SharedContextScorer (the
// same numbers up to float32 rounding, each shared context run once: give it its own ModelKey),
// tests use deterministic fakes. Implementations must return one Result per Request in order and
// give the same numbers whatever the batch size.
type Scorer interface {
	LogLikelihood(reqs []Request, batchSize int) ([]Result, error)
}

// Encoder turns (context, continuation) strings into token requests with lm-evaluation-harness
// semantics (HFLM._encode_pair and _loglikelihood_tokens).
type Encoder struct {
	// Tokenizer encodes text without special tokens.
	Tokenizer Tokenizer
	// AddBOS prepends BOS to every encoding (Gemma; tokenizer_config add_bos_token).
	AddBOS bool
	// BOS is the beginning-of-sequence id; also the prefix token of an empty context.
	BOS int32
	// MaxLength is the model window (0 = unbounded). Requests keep their last MaxLength+1
	// tokens, as the harness does: the model reads MaxLength tokens and predicts the last one.
	// Loaders resolve it with EncodingOptions.Resolve (DefaultMaxLength for a model without one).
	MaxLength int
	// MaxLengthSource says where MaxLength came from (recorded in results.json; may be empty).
	MaxLengthSource string
}

func (e *Encoder) encode(s string) []int32 {
	ids := e.Tokenizer.Encode(s)
	if e.AddBOS {
		return append([]int32{e.BOS}, ids...)
	}
	return ids
}

// Pair is an encoded request and what truncation removed.
type Pair struct {
	Request
	// Truncated counts context tokens dropped from the left to fit MaxLength.
	Truncated int
	// FullContext is the context's encoding before truncation (Context is its tail).
	FullContext []int32
}

// SplitTrailingSpace moves the context's trailing whitespace to the front of the continuation,
// as the harness does before encoding (so "Answer: " + "A" becomes "Answer:" + " A").
func SplitTrailingSpace(context, continuation string) (string, string) {
	trimmed := strings.TrimRightFunc(context, unicode.IsSpace)
	if n := len(context) - len(trimmed); n > 0 {
		return trimmed, context[len(trimmed):] + continuation
	}
	return context, continuation
}

// EncodePair encodes one (context, continuation): continuation tokens are the tokens of
// context+continuation beyond the tokens of the context alone, then the pair is left-truncated
// to MaxLength+1 tokens. An empty context becomes the BOS token alone, as the harness's prefix
// token.
func (e *Encoder) EncodePair(context, continuation string) (Pair, error) {
	context, continuation = SplitTrailingSpace(context, continuation)
	var ctx, cont []int32
	if context == "" {
		ctx, cont = []int32{e.BOS}, e.Tokenizer.Encode(continuation)
	} else {
		whole := e.encode(context + continuation)
		ctx = e.encode(context)
		if len(ctx) > len(whole) {
			return Pair{}, fmt.Errorf("context %q encodes to more tokens than context+continuation", clip(context))
		}
		// As the harness: the context keeps its own encoding even when the tokenizer merged
		// across the boundary, and the continuation is whatever the whole has beyond it.
		cont = whole[len(ctx):]
	}
	if len(cont) == 0 {
		return Pair{}, fmt.Errorf("continuation %q encodes to no tokens after context %q", continuation, clip(context))
	}
	p := Pair{Request: Request{Context: ctx, Continuation: cont}, FullContext: ctx}
	if e.MaxLength > 0 {
		if len(cont) > e.MaxLength {
			return Pair{}, fmt.Errorf("continuation %q has %d tokens, more than the model's %d", clip(continuation), len(cont), e.MaxLength)
		}
		if over := len(ctx) + len(cont) - (e.MaxLength + 1); over > 0 {
			p.Truncated = over
			p.Context = ctx[over:]
		}
	}
	return p, nil
}

func clip(s string) string {
	if len(s) > 60 {
		return "…" + s[len(s)-60:]
	}
	return s
}
