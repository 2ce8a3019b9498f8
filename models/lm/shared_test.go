package lm

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// sharedRequests is a mixed batch for the shared-context path, in shuffled order: shared
// contexts of 1, 5, 17 and 30 tokens with one-token and multi-token continuations, a duplicate,
// continuations that share a prefix, a greedy continuation, requests that need truncation, a
// context asked once, a context with one-token continuations only. wantShared[i] says whether
// request i should be scored from a shared cache.
func sharedRequests(t *testing.T, w testWeights, V, maxLen int) (reqs []Request, wantShared []bool) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	add := func(shared bool, ctx []int32, conts ...[]int32) {
		for _, c := range conts {
			reqs = append(reqs, Request{Context: ctx, Continuation: c})
			wantShared = append(wantShared, shared)
		}
	}
	ctxA := randSeq(r, 17, V)
	greedy := slices.Clone(ctxA)
	for range 3 {
		l := refLogits(w.E, w.drift, w.W, greedy)
		last := l[len(l)-1]
		best := 0
		for v := range last {
			if last[v] > last[best] {
				best = v
			}
		}
		greedy = append(greedy, int32(best))
	}
	three := randSeq(r, 3, V)
	add(true, ctxA, randSeq(r, 2, V), three, []int32{1}, []int32{4}, randSeq(r, 5, V), three, greedy[len(ctxA):])
	add(true, randSeq(r, 5, V), randSeq(r, 2, V), randSeq(r, 4, V))
	add(true, randSeq(r, 1, V), randSeq(r, 2, V), randSeq(r, 3, V), []int32{2})
	// 30 + 12 tokens exceed the window's 41: that one is truncated, its siblings shared.
	ctxD := randSeq(r, 30, V)
	add(true, ctxD, randSeq(r, 3, V), randSeq(r, 5, V), randSeq(r, 11, V))
	add(false, ctxD, randSeq(r, 12, V))
	// Continuations with one prefix read one model input (one row); a third makes two rows.
	ctxG := randSeq(r, 9, V)
	add(false, randSeq(r, 9, V), []int32{3, 4, 5}, []int32{3, 4, 6})
	add(true, ctxG, []int32{3, 4, 5}, []int32{3, 4, 6}, []int32{3, 8})
	add(false, randSeq(r, 12, V), randSeq(r, 4, V))                              // asked once
	add(false, randSeq(r, 8, V), []int32{0}, []int32{1}, []int32{2}, []int32{3}) // one input
	add(false, randSeq(r, 50, V), randSeq(r, 3, V), randSeq(r, 2, V))            // truncated
	if maxLen != 40 {
		t.Fatalf("sharedRequests assumes a window of 40, got %d", maxLen)
	}
	perm := r.Perm(len(reqs))
	outR, outS := make([]Request, len(reqs)), make([]bool, len(reqs))
	for i, p := range perm {
		outR[i], outS[i] = reqs[p], wantShared[p]
	}
	return outR, outS
}

func TestLogLikelihoodSharedContextEqualsFullPath(t *testing.T) {
	const V, maxLen = 13, 40
	m, w := newTestModel(t, V, 6, maxLen, 5)
	reqs, wantShared := sharedRequests(t, w, V, maxLen)

	groups, rest := planShared(reqs, maxLen)
	gotShared := make([]bool, len(reqs))
	for _, g := range groups {
		for _, row := range g.rows {
			for _, i := range row.reqs {
				gotShared[i] = true
			}
		}
	}
	if !slices.Equal(gotShared, wantShared) {
		t.Fatalf("shared requests %v, want %v", gotShared, wantShared)
	}
	if len(rest)+countTrue(gotShared) != len(reqs) || !slices.IsSorted(rest) {
		t.Fatalf("LogLikelihood's requests %v are not the rest in request order", rest)
	}

	full, err := m.LogLikelihood(reqs, 4)
	if err != nil {
		t.Fatal(err)
	}
	var first []Result
	for _, bs := range []int{1, 16} {
		got, err := m.LogLikelihoodSharedContext(reqs, bs)
		if err != nil {
			t.Fatal(err)
		}
		maxDiff := 0.0
		for i, r := range reqs {
			want := refScore(w, maxLen, r)
			d := math.Abs(got[i].LogProb - full[i].LogProb)
			maxDiff = max(maxDiff, d)
			if d > 1e-4 || got[i].IsGreedy != full[i].IsGreedy || got[i].NumTokens != full[i].NumTokens {
				t.Errorf("batch %d request %d (%d+%d tokens, shared %v): got %+v, LogLikelihood %+v",
					bs, i, len(r.Context), len(r.Continuation), wantShared[i], got[i], full[i])
			}
			if math.Abs(got[i].LogProb-want.LogProb) > 1e-4 || got[i].IsGreedy != want.IsGreedy {
				t.Errorf("batch %d request %d: got %+v, host reference %+v", bs, i, got[i], want)
			}
			if !wantShared[i] && got[i] != full[i] {
				t.Errorf("request %d goes through LogLikelihood but got %+v, not its %+v", i, got[i], full[i])
			}
		}
		t.Logf("batch size %d: max |LogProb - LogLikelihood's| = %.2e", bs, maxDiff)
		if first == nil {
			first = got
		} else if !slices.Equal(first, got) {
			t.Errorf("batch size %d changed results", bs)
		}
	}
	greedyReq := slices.IndexFunc(reqs, func(r Request) bool {
		return len(r.Context) == 17 && len(r.Continuation) == 3 && refScore(w, maxLen, r).IsGreedy
	})
	if greedyReq < 0 || !first[greedyReq].IsGreedy {
		t.Errorf("the greedy continuation (request %d) is not reported greedy", greedyReq)
	}

	// The prefilled cache is read, not consumed: scoring the requests in reverse order (other
	// rows first) gives the same numbers, bit for bit.
	rev := slices.Clone(reqs)
	slices.Reverse(rev)
	back, err := m.LogLikelihoodSharedContext(rev, 4)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(back)
	if !slices.Equal(back, first) {
		t.Errorf("reversed request order changed results:\n%v\n%v", back, first)
	}

	if got, err := m.LogLikelihoodSharedContext(nil, 4); err != nil || len(got) != 0 {
		t.Errorf("no requests: %v, %v", got, err)
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

func TestLogLikelihoodSharedContextErrorsAsLogLikelihood(t *testing.T) {
	const V, maxLen = 9, 24
	m, _ := newTestModel(t, V, 5, maxLen, 3)
	good := []Request{{Context: []int32{1, 2, 3}, Continuation: []int32{4, 5}}, {Context: []int32{1, 2, 3}, Continuation: []int32{6, 7}}}
	for name, bad := range map[string]Request{
		"empty continuation":   {Context: []int32{1}},
		"outside the vocab":    {Context: []int32{1}, Continuation: []int32{V}},
		"context outside":      {Context: []int32{-1}, Continuation: []int32{1, 2}},
		"exceeds the model":    {Context: []int32{1}, Continuation: make([]int32, maxLen+1)},
		"nothing to condition": {Continuation: []int32{1}},
		"empty context":        {Continuation: []int32{1, 2, 3}},
	} {
		reqs := append(slices.Clone(good), bad, good[0])
		_, want := m.LogLikelihood(reqs, 4)
		_, got := m.LogLikelihoodSharedContext(reqs, 4)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%s: error %v, LogLikelihood's %v", name, got, want)
		}
	}
}

// The cache a group prefills holds the context and every padded step, within the window.
func TestSharedCacheLength(t *testing.T) {
	for _, limit := range []int{0, 24, 40, 1024} {
		for start := 0; start < 70; start++ {
			for S := 1; S <= 20; S++ {
				if limit > 0 && start+S > limit {
					continue
				}
				c := sharedCacheLength(start, S, limit)
				if Spad := min(nextPow2(S), c-start); Spad < S || start+Spad > c || (limit > 0 && c > limit) {
					t.Fatalf("start %d, step %d, window %d: cache %d, padded step %d", start, S, limit, c, Spad)
				}
			}
		}
	}
}
