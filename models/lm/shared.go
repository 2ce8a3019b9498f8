package lm

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Shared-context scoring: multiple-choice cloze tasks ask for the same context (retrieved
// passages and the question, often hundreds of tokens) with a few short continuations (the
// choices). LogLikelihood runs the whole context once per distinct continuation; the path here
// runs it once, through Architecture.Step into a decoding cache, and scores each continuation by
// a short Step from that cache.

// SharedContextScorer is a scorer (evaluation.Scorer) that scores with
// LogLikelihoodSharedContext; the zero-cost way to hand the shared-context path to code that
// calls LogLikelihood, such as evaluation.Evaluate.
type SharedContextScorer struct {
	Model *Model
}

// LogLikelihood is Model.LogLikelihoodSharedContext.
func (s SharedContextScorer) LogLikelihood(reqs []Request, batchSize int) ([]Result, error) {
	return s.Model.LogLikelihoodSharedContext(reqs, batchSize)
}

// LogLikelihoodSharedContext scores requests as LogLikelihood does (lm-evaluation-harness
// semantics, the same errors for the same bad requests, results in request order, independent
// of batchSize) but computes each context shared by several requests once.
//
// Requests are grouped by their context. A group whose requests need at least two distinct model
// inputs (LogLikelihood would run at least two rows for it) prefills the context but its last
// token with Step, in power-of-two pieces as Generate does, then runs one Step per distinct
// continuation prefix from that cache: the context's last token followed by the continuation
// but its last token, reading the log_softmax of each continuation token and whether it is the
// argmax on the device, as LogLikelihood's graph does. The prefilled cache is an input of these
// steps, never donated, so every continuation reads the same one. Everything else goes through
// LogLikelihood unchanged, batchSize rows at a time: requests that need left truncation (their
// context is not the model's input), an empty context, and groups whose requests all read one
// model input (one-token continuations of one context already share one pass there).
//
// The numbers are LogLikelihood's up to float32 rounding: Step's contract is that it equals
// Logits, but the chunked computation sums in another order. On the conformance fixtures of
// every family (float32 compute) the log-probabilities differ from LogLikelihood's by less than
// 1e-4 (the check lmtest's shared-context asserts; docs/benchmarks.md has the measured
// differences), and IsGreedy can differ only where two logits tie within that rounding. Which
// path a request takes depends on the other requests of the call (a context alone in one call
// is shared in another), so a request's numbers can move by that rounding between calls.
func (m *Model) LogLikelihoodSharedContext(reqs []Request, batchSize int) ([]Result, error) {
	limit := m.arch.MaxLength()
	for i, r := range reqs {
		if _, err := m.modelInput(i, r, limit); err != nil {
			return nil, err
		}
	}
	groups, rest := planShared(reqs, limit)
	out := make([]Result, len(reqs))
	if len(rest) > 0 {
		sub := make([]Request, len(rest))
		for k, i := range rest {
			sub[k] = reqs[i]
		}
		res, err := m.LogLikelihood(sub, batchSize)
		if err != nil {
			return nil, err
		}
		for k, i := range rest {
			out[i] = res[k]
		}
	}
	for _, g := range groups {
		if err := m.scoreShared(g, reqs, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sharedGroup is one context and its continuations grouped by the tokens a Step reads after
// the context's last token (the continuation but its last token): rows[k].inp is that prefix
// and rows[k].reqs the requests it scores.
type sharedGroup struct {
	ctx  []int32
	rows []scoreRow
}

// planShared splits valid requests into shared-context groups (in order of first appearance)
// and the indices of requests LogLikelihood scores (in request order).
func planShared(reqs []Request, limit int) (groups []sharedGroup, rest []int) {
	type building struct {
		sharedGroup
		members []int
		rowOf   map[string]int
	}
	var all []*building
	byCtx := map[string]*building{}
	for i, r := range reqs {
		if len(r.Context) == 0 || (limit > 0 && len(r.Context)+len(r.Continuation) > limit+1) {
			rest = append(rest, i)
			continue
		}
		key := tokenKey(r.Context)
		b := byCtx[key]
		if b == nil {
			b = &building{sharedGroup: sharedGroup{ctx: r.Context}, rowOf: map[string]int{}}
			byCtx[key] = b
			all = append(all, b)
		}
		b.members = append(b.members, i)
		prefix := r.Continuation[:len(r.Continuation)-1]
		pk := tokenKey(prefix)
		k, ok := b.rowOf[pk]
		if !ok {
			k = len(b.rows)
			b.rowOf[pk] = k
			b.rows = append(b.rows, scoreRow{inp: prefix})
		}
		b.rows[k].reqs = append(b.rows[k].reqs, i)
	}
	var single []int
	for _, b := range all {
		if len(b.rows) >= 2 {
			groups = append(groups, b.sharedGroup)
		} else {
			single = append(single, b.members...)
		}
	}
	if len(single) > 0 {
		// Back into request order among the other requests LogLikelihood scores.
		in := make([]bool, len(reqs))
		for _, i := range append(rest, single...) {
			in[i] = true
		}
		rest = rest[:0]
		for i := range reqs {
			if in[i] {
				rest = append(rest, i)
			}
		}
	}
	return groups, rest
}

// sharedCacheLength is the cache a group needs: the context but its last token (start) and the
// longest step, padded to a power of two, within the window; rounded up to a length bucket so
// nearby lengths share compiled graphs.
func sharedCacheLength(start, maxStep, limit int) int {
	need := start + nextPow2(maxStep)
	if limit > 0 {
		need = min(need, limit)
	}
	return bucketLength(need, limit)
}

// scoreShared scores one group into out: a prefill of g.ctx[:-1], then one Step per row.
func (m *Model) scoreShared(g sharedGroup, reqs []Request, out []Result) error {
	limit := m.arch.MaxLength()
	start := len(g.ctx) - 1
	maxStep := 0
	for _, r := range g.rows {
		maxStep = max(maxStep, 1+len(r.inp))
	}
	cacheLen := sharedCacheLength(start, maxStep, limit)
	specs := m.arch.CacheShapes(cacheLen, m.dtype)
	nc := len(specs)
	cache := make([]any, nc)
	for i, cs := range specs {
		cache[i] = tensors.FromShape(shapes.Make(cs.DType, cs.Dimensions...))
	}
	prefill, err := m.exec(fmt.Sprintf("shared-prefill-%d", nc), func(p Params, in []*graph.Node) []*graph.Node {
		// Only the cache comes back; the head's logits are pruned from the graph.
		_, newCache := m.arch.Step(p, in[:nc], in[nc], in[nc+1])
		if len(newCache) != nc {
			panic(fmt.Sprintf("Step returned %d cache tensors, CacheShapes has %d", len(newCache), nc))
		}
		return newCache
	})
	if err != nil {
		return err
	}
	score, err := m.exec(fmt.Sprintf("shared-score-%d", nc), func(p Params, in []*graph.Node) []*graph.Node {
		logits, _ := m.arch.Step(p, in[:nc], in[nc], in[nc+1])
		if logits.DType() != dtypes.Float32 {
			logits = graph.ConvertDType(logits, dtypes.Float32)
		}
		return scoreGraph(logits, in[nc+2])
	})
	if err != nil {
		return err
	}
	pos := 0
	for _, piece := range prefillPieces(start) {
		args := append(append(make([]any, 0, nc+2), cache...),
			tensors.FromFlatDataAndDimensions(append([]int32(nil), g.ctx[pos:pos+piece]...), 1, piece), int32(pos))
		res, err := m.run(prefill, args...)
		if err != nil {
			return err
		}
		for i := range cache {
			cache[i] = res[i]
		}
		pos += piece
	}
	last := g.ctx[start]
	for _, r := range g.rows {
		// The step reads the context's last token, then the continuation but its last token:
		// position j predicts continuation token j. Padding after them (up to a power of two, so
		// few shapes compile) is invisible to them by causality and stays inside the cache.
		S := 1 + len(r.inp)
		Spad := min(nextPow2(S), cacheLen-start)
		tok := make([]int32, Spad)
		tok[0] = last
		copy(tok[1:], r.inp)
		K := 0
		for _, ri := range r.reqs {
			K += len(reqs[ri].Continuation)
		}
		Kpad := nextPow2(K)
		gather := make([]int32, Kpad*3)
		k := 0
		for _, ri := range r.reqs {
			for j, target := range reqs[ri].Continuation {
				gather[3*k+1], gather[3*k+2] = int32(j), target
				k++
			}
		}
		args := append(append(make([]any, 0, nc+3), cache...), tensors.FromFlatDataAndDimensions(tok, 1, Spad), int32(start),
			tensors.FromFlatDataAndDimensions(gather, 1, Kpad, 3))
		res, err := m.run(score, args...)
		if err != nil {
			return err
		}
		lp, err := tensors.CopyFlatData[float32](res[0])
		if err != nil {
			return err
		}
		greedy, err := tensors.CopyFlatData[bool](res[1])
		if err != nil {
			return err
		}
		k = 0
		for _, ri := range r.reqs {
			n := len(reqs[ri].Continuation)
			res := Result{IsGreedy: true, NumTokens: n}
			for range n {
				res.LogProb += float64(lp[k])
				res.IsGreedy = res.IsGreedy && greedy[k]
				k++
			}
			out[ri] = res
		}
	}
	return nil
}
