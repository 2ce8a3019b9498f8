package lmtest

// The runtime checks: the fixture folder through lm.Load and lm.Model, as evaluation, the CLI
// and training use a family.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/gomlx/compute/dtypes"

	"github.com/perpetual-ml/perpetual/models/checkpoint"
	"github.com/perpetual-ml/perpetual/models/internal/goldentest"
	"github.com/perpetual-ml/perpetual/models/lm"
)

// shortBucket is the runtime's shortest length bucket (lm pads rows to 16, 32, 64, ...
// tokens): checks that keep their rows within it compile one shape.
const shortBucket = 16

func checkRuntimeLogits(s *session) error {
	m, err := s.runtime()
	if err != nil {
		return err
	}
	if m.Arch().Family() != s.modelType {
		return fmt.Errorf("lm.Load built family %q for model_type %q", m.Arch().Family(), s.modelType)
	}
	seqs := append(slices.Clone(s.golden.Sequences), []int32{})
	got, err := m.Logits(seqs)
	if err != nil {
		return err
	}
	if len(got) != len(seqs) || len(got[len(seqs)-1]) != 0 {
		return fmt.Errorf("lm.Model.Logits of %d sequences (the last empty) returned %d results", len(seqs), len(got))
	}
	for i := range s.golden.Sequences {
		if len(got[i]) != len(seqs[i]) {
			return fmt.Errorf("lm.Model.Logits: sequence %d has %d positions, want %d", i, len(got[i]), len(seqs[i]))
		}
		if err := s.againstGolden("lm.Model.Logits", got[i], i); err != nil {
			return err
		}
	}
	if _, err := m.Logits([][]int32{{0, int32(s.vocab)}}); err == nil {
		return fmt.Errorf("lm.Model.Logits accepted token %d, outside the vocabulary of %d", s.vocab, s.vocab)
	}
	return nil
}

func checkPrecision(s *session, dtype dtypes.DType) error {
	m, err := lm.Load(s.fix.Dir, lm.LoadOptions{Backend: s.backend, DType: dtype})
	if err != nil {
		return err
	}
	for name, w := range m.Weights() {
		if w.DType() != dtype {
			return fmt.Errorf("weight %s loaded as %s, want %s", name, w.DType(), dtype)
		}
	}
	// The sequences that fit the runtime's shortest length bucket (one compiled shape), or the
	// first one if none does.
	seqs, which := [][]int32{s.golden.Sequences[0]}, []int{0}
	for i, seq := range s.golden.Sequences[1:] {
		if len(seq) <= shortBucket {
			seqs, which = append(seqs, seq), append(which, i+1)
		}
	}
	if len(seqs[0]) > shortBucket && len(seqs) > 1 {
		seqs, which = seqs[1:], which[1:]
	}
	got, err := m.Logits(seqs)
	if err != nil {
		return err
	}
	ref, tol, against := s.golden.Logits, s.fix.Float16Tolerance, "the float32 reference"
	if dtype == dtypes.BFloat16 {
		tol = s.fix.BFloat16Tolerance
		if s.golden.LogitsBF16 != nil {
			ref, against = s.golden.LogitsBF16, "the reference computed in bfloat16"
		}
	}
	var errs []error
	for k, i := range which {
		rel, maxAbs := goldentest.Compare(goldentest.Flatten(got[k]), ref[i])
		s.logf("sequence %d in %s: relative error %.2e (max abs %.2e) against %s", i, dtype, rel, maxAbs, against)
		if rel > tol || math.IsNaN(rel) {
			errs = append(errs, fmt.Errorf("sequence %d in %s: relative error %.2e > %.0e against %s", i, dtype, rel, tol, against))
		}
	}
	return errors.Join(errs...)
}

// score is a Request's log-probability and greedy flag from reference logits of a whole
// sequence ([T*V], float64): the continuation seq[ctx:] read at positions ctx-1 ... T-2.
func score(logits []float64, vocab int, seq []int32, ctx int) lm.Result {
	res := lm.Result{IsGreedy: true, NumTokens: len(seq) - ctx}
	for pos := ctx; pos < len(seq); pos++ {
		row := logits[(pos-1)*vocab : pos*vocab]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v - row[best])
		}
		res.LogProb += row[seq[pos]] - row[best] - math.Log(z)
		res.IsGreedy = res.IsGreedy && best == int(seq[pos])
	}
	return res
}

func checkLogLikelihood(s *session) error {
	m, err := s.runtime()
	if err != nil {
		return err
	}
	g, V := s.golden, s.vocab
	var reqs []lm.Request
	var want []lm.Result
	for i, seq := range g.Sequences {
		for _, ctx := range slices.Compact([]int{1, len(seq) / 2}) {
			reqs = append(reqs, lm.Request{Context: seq[:ctx], Continuation: seq[ctx:]})
			want = append(want, score(g.Logits[i], V, seq, ctx))
		}
	}
	// Single-token continuations of one context (the runtime scores them from one forward
	// pass), the first greedy by construction: the argmax of the reference.
	li := s.longest()
	seq, ctx := g.Sequences[li], len(g.Sequences[li])/2
	row := g.Logits[li][(ctx-1)*V : ctx*V]
	best := 0
	for j := range row {
		if row[j] > row[best] {
			best = j
		}
	}
	for k := range 4 {
		c := int32((best + k) % V)
		full := append(slices.Clone(seq[:ctx]), c)
		reqs = append(reqs, lm.Request{Context: seq[:ctx], Continuation: []int32{c}})
		want = append(want, score(row, V, full[ctx-1:], 1))
	}
	if !want[len(want)-4].IsGreedy {
		return errors.New("lmtest: the argmax continuation is not greedy in the reference (internal error)")
	}
	var first []lm.Result
	for _, bs := range []int{1, len(reqs)} {
		got, err := m.LogLikelihood(reqs, bs)
		if err != nil {
			return err
		}
		for i, r := range got {
			w := want[i]
			if math.Abs(r.LogProb-w.LogProb) > s.fix.Tolerance*(1+math.Abs(w.LogProb)) || r.IsGreedy != w.IsGreedy || r.NumTokens != w.NumTokens {
				return fmt.Errorf("batch size %d, request %d (%d+%d tokens): got %+v, reference %+v",
					bs, i, len(reqs[i].Context), len(reqs[i].Continuation), r, w)
			}
		}
		if first == nil {
			first = got
		} else if !slices.Equal(got, first) {
			return fmt.Errorf("batch size %d changed results (batch size 1 gave %v, now %v)", bs, first, got)
		}
	}
	return nil
}

// sharedContextTolerance bounds |LogProb| between lm.Model.LogLikelihoodSharedContext and
// LogLikelihood on a fixture in float32: the same model computed through Step's cache instead of
// Logits, so only float32 rounding separates them.
const sharedContextTolerance = 1e-4

func checkSharedContext(s *session) error {
	m, err := s.runtime()
	if err != nil {
		return err
	}
	g, V := s.golden, s.vocab
	var reqs []lm.Request
	var want []*lm.Result // the reference's, where the request continues a golden sequence
	follow := func(i, ctx, end int) {
		seq := g.Sequences[i][:end]
		r := score(g.Logits[i], V, seq, ctx)
		reqs, want = append(reqs, lm.Request{Context: seq[:ctx], Continuation: seq[ctx:]}), append(want, &r)
	}
	other := func(ctx []int32, cont ...int32) {
		reqs, want = append(reqs, lm.Request{Context: ctx, Continuation: cont}), append(want, nil)
	}
	// One context, half the longest sequence, with several continuations: the rest of the
	// sequence, its first three tokens (twice), the reference's argmax alone (greedy), two
	// tokens off the sequence. Prefilled in pieces, then one Step per continuation from the
	// same cache.
	li := s.longest()
	seq, ctx := g.Sequences[li], len(g.Sequences[li])/2
	row := g.Logits[li][(ctx-1)*V : ctx*V]
	best := 0
	for j := range row {
		if row[j] > row[best] {
			best = j
		}
	}
	follow(li, ctx, len(seq))
	follow(li, ctx, ctx+3)
	other(seq[:ctx], int32(best))
	greedy := len(reqs) - 1
	other(seq[:ctx], int32((best+1)%V), seq[ctx+1])
	follow(li, ctx, ctx+3)
	// A one-token context (nothing to prefill) with two continuations, and a context asked once
	// (scored by LogLikelihood).
	other0 := (li + 1) % len(g.Sequences)
	follow(other0, 1, len(g.Sequences[other0]))
	follow(other0, 1, 3)
	other1 := (li + 2) % len(g.Sequences)
	follow(other1, 2, len(g.Sequences[other1]))
	full, err := m.LogLikelihood(reqs, len(reqs))
	if err != nil {
		return err
	}
	got, err := m.LogLikelihoodSharedContext(reqs, len(reqs))
	if err != nil {
		return err
	}
	if !got[greedy].IsGreedy {
		return fmt.Errorf("the reference's argmax after %d tokens is not greedy: %+v", ctx, got[greedy])
	}
	maxDiff := 0.0
	for i, r := range got {
		f := full[i]
		d := math.Abs(r.LogProb - f.LogProb)
		maxDiff = max(maxDiff, d)
		if d > sharedContextTolerance || math.IsNaN(r.LogProb) || r.IsGreedy != f.IsGreedy || r.NumTokens != f.NumTokens {
			return fmt.Errorf("request %d (%d+%d tokens): shared context gave %+v, LogLikelihood %+v",
				i, len(reqs[i].Context), len(reqs[i].Continuation), r, f)
		}
		if w := want[i]; w != nil && (math.Abs(r.LogProb-w.LogProb) > s.fix.Tolerance*(1+math.Abs(w.LogProb)) || r.IsGreedy != w.IsGreedy) {
			return fmt.Errorf("request %d (%d+%d tokens): shared context gave %+v, reference %+v",
				i, len(reqs[i].Context), len(reqs[i].Continuation), r, *w)
		}
	}
	s.logf("shared context: max |LogProb - LogLikelihood's| = %.2e over %d requests", maxDiff, len(reqs))
	return nil
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

func checkGenerate(s *session) error {
	m, err := s.runtime()
	if err != nil {
		return err
	}
	// Prompts of up to 7 tokens (prefilled in pieces of 4, 2 and 1), one per sequence: a tiny
	// random model's greedy tokens often depend on the last token only, so one prompt could
	// miss a cache that loses the history.
	var prompts, texts [][]int32
	for _, seq := range s.golden.Sequences {
		prompt := seq[:min(7, len(seq))]
		newTokens := shortBucket - len(prompt) // the recomputation stays in one compiled shape
		if limit := m.Arch().MaxLength(); limit > 0 {
			newTokens = min(newTokens, limit-len(prompt))
		}
		out, err := m.Generate(prompt, lm.GenerateOptions{MaxNewTokens: newTokens})
		if err != nil {
			return err
		}
		if len(out) != newTokens {
			return fmt.Errorf("prompt %v: generated %d tokens, want %d", prompt, len(out), newTokens)
		}
		prompts, texts = append(prompts, prompt), append(texts, append(slices.Clone(prompt), out...))
	}
	// Full recomputation of each prompt and its continuation at once: by causality (checked
	// above) position j's logits are those of the prefix ending at j.
	full, err := m.Logits(texts)
	if err != nil {
		return err
	}
	for k, text := range texts {
		for j := len(prompts[k]); j < len(text); j++ {
			if want := argmax(full[k][j-1]); text[j] != want {
				return fmt.Errorf("prompt %v, new token %d: Generate gave %d, argmax of the full recomputation %d (generated %v)",
					prompts[k], j-len(prompts[k]), text[j], want, text[len(prompts[k]):])
			}
		}
	}
	return nil
}

func checkSaveReload(s *session) error {
	m, err := s.runtime()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "lmtest-save-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var total int64
	for _, w := range m.WeightList() {
		total += w.Shape().ByteSize()
	}
	dir := filepath.Join(tmp, "model")
	if err := m.Save(dir, checkpoint.SaveOptions{MaxShardSize: total/3 + 1}); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, checkpoint.IndexFile)); err != nil {
		return fmt.Errorf("saved in shards of %d bytes: %w", total/3+1, err)
	}
	back, err := lm.Load(dir, lm.LoadOptions{Backend: s.backend})
	if err != nil {
		return err
	}
	if back.Arch().Family() != s.modelType || string(back.Config()) != string(m.Config()) {
		return fmt.Errorf("reloaded as family %q with config %s", back.Arch().Family(), back.Config())
	}
	// The hash covers the config and every weight's name, dtype, shape and bytes: equal hashes
	// mean the same model, so no logits need recomputing.
	if back.Hash() != m.Hash() {
		return errors.New("the hash changed through save and reload")
	}
	return nil
}
