// Package stats holds the statistics reported beside every evaluation score: the standard error
// of a mean as lm-evaluation-harness computes it, Wilson score intervals, McNemar's exact test and
// a paired bootstrap for comparing two conditions on the same questions, and the chance and
// always-one-letter baselines.
//
// Everything is written out here rather than taken from gonum: the formulas are short, and the
// exact binomial tail and the bootstrap's random stream must be reproducible bit for bit by the
// independent Python reference (testdata/reference.py), which a library's internals would hide.
package stats

import (
	"fmt"
	"math"
	"sort"
)

// Mean returns the arithmetic mean of xs (0 for an empty slice).
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// StdErr is the standard error of the mean as lm-evaluation-harness reports it ("acc_stderr"):
// the sample standard deviation (divided by n-1) over sqrt(n). It is NaN for fewer than two values,
// where the harness would divide by zero.
func StdErr(xs []float64) float64 {
	n := len(xs)
	if n < 2 {
		return math.NaN()
	}
	m := Mean(xs)
	ss := 0.0
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
}

// Z95 is the two-sided 95% normal quantile used for Wilson intervals.
const Z95 = 1.959963984540054

// Wilson returns the Wilson score interval for k successes out of n at normal quantile z.
// For n == 0 it returns the uninformative interval [0, 1].
func Wilson(k, n int, z float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	p := float64(k) / float64(n)
	nf := float64(n)
	z2 := z * z
	den := 1 + z2/nf
	centre := (p + z2/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	return math.Max(0, centre-half), math.Min(1, centre+half)
}

// McNemarResult is the outcome of McNemar's exact test on paired correct/incorrect outcomes.
type McNemarResult struct {
	// OnlyA counts questions condition A got right and B got wrong; OnlyB the reverse.
	OnlyA, OnlyB int
	// P is the exact two-sided p-value: twice the smaller binomial(OnlyA+OnlyB, 1/2) tail, capped at 1.
	P float64
}

// McNemar runs McNemar's exact test: under the null hypothesis the discordant pairs split
// evenly between the two conditions.
func McNemar(a, b []bool) (McNemarResult, error) {
	if len(a) != len(b) {
		return McNemarResult{}, fmt.Errorf("stats: McNemar needs paired outcomes, got %d and %d", len(a), len(b))
	}
	var r McNemarResult
	for i := range a {
		switch {
		case a[i] && !b[i]:
			r.OnlyA++
		case b[i] && !a[i]:
			r.OnlyB++
		}
	}
	r.P = math.Min(1, 2*BinomCDFHalf(min(r.OnlyA, r.OnlyB), r.OnlyA+r.OnlyB))
	return r, nil
}

// BinomCDFHalf is P(X <= k) for X ~ Binomial(n, 1/2), summed in log space so large n neither
// overflows nor underflows term by term.
func BinomCDFHalf(k, n int) float64 {
	if n == 0 || k >= n {
		return 1
	}
	if k < 0 {
		return 0
	}
	lgN, _ := math.Lgamma(float64(n + 1))
	logTerms := make([]float64, k+1)
	maxLog := math.Inf(-1)
	for i := 0; i <= k; i++ {
		lgI, _ := math.Lgamma(float64(i + 1))
		lgNI, _ := math.Lgamma(float64(n - i + 1))
		logTerms[i] = lgN - lgI - lgNI - float64(n)*math.Ln2
		maxLog = math.Max(maxLog, logTerms[i])
	}
	s := 0.0
	for _, l := range logTerms {
		s += math.Exp(l - maxLog)
	}
	return math.Min(1, math.Exp(maxLog)*s)
}

// BootstrapResult is a paired bootstrap of the accuracy difference B - A.
type BootstrapResult struct {
	// Diff is the observed accuracy of B minus the accuracy of A.
	Diff float64
	// Lo and Hi bound the 95% percentile interval of the resampled differences.
	Lo, Hi float64
	// P is the two-sided p-value of the centred bootstrap: the share of resampled differences at
	// least as far from Diff as Diff is from zero, (1 + count) / (1 + iterations).
	P float64
	// Iterations and Seed reproduce the run.
	Iterations int
	Seed       uint64
}

// SplitMix64 is the random stream of the bootstrap: tiny, fully specified and easy to reproduce
// in the Python reference, so bootstrap results can be checked exactly.
type SplitMix64 struct{ state uint64 }

// NewSplitMix64 seeds a stream.
func NewSplitMix64(seed uint64) *SplitMix64 { return &SplitMix64{state: seed} }

// Next returns the next 64-bit value.
func (s *SplitMix64) Next() uint64 {
	s.state += 0x9E3779B97F4A7C15
	z := s.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// PairedBootstrap resamples question indices with replacement (the same indices for both
// conditions, which keeps the pairing) and reports the distribution of the accuracy difference.
// Index j of a resample is Next() mod n.
func PairedBootstrap(a, b []bool, iterations int, seed uint64) (BootstrapResult, error) {
	n := len(a)
	if n != len(b) {
		return BootstrapResult{}, fmt.Errorf("stats: paired bootstrap needs paired outcomes, got %d and %d", len(a), len(b))
	}
	if n == 0 || iterations < 1 {
		return BootstrapResult{}, fmt.Errorf("stats: paired bootstrap needs questions (%d) and iterations (%d)", n, iterations)
	}
	delta := make([]int, n) // per-question contribution to (correct B - correct A)
	obs := 0
	for i := range a {
		delta[i] = b2i(b[i]) - b2i(a[i])
		obs += delta[i]
	}
	r := BootstrapResult{Diff: float64(obs) / float64(n), Iterations: iterations, Seed: seed}
	rng := NewSplitMix64(seed)
	diffs := make([]float64, iterations)
	extreme := 0
	for it := range diffs {
		s := 0
		for j := 0; j < n; j++ {
			s += delta[rng.Next()%uint64(n)]
		}
		diffs[it] = float64(s) / float64(n)
		// Compare integers (scaled by n) so the test does not depend on float rounding.
		if abs(s-obs) >= abs(obs) {
			extreme++
		}
	}
	sort.Float64s(diffs)
	r.Lo = diffs[int(math.Floor(0.025*float64(iterations)))]
	r.Hi = diffs[int(math.Ceil(0.975*float64(iterations)))-1]
	r.P = float64(1+extreme) / float64(1+iterations)
	return r, nil
}

// Baselines are the accuracies of answering without a model.
type Baselines struct {
	// Chance is the expected accuracy of a uniform guess: the mean of 1/len(choices).
	Chance float64 `json:"chance"`
	// Always maps "A".."Z" to the accuracy of always answering that letter (questions with fewer
	// choices count as wrong).
	Always map[string]float64 `json:"always"`
}

// ComputeBaselines returns the chance and always-letter baselines for questions with the given
// gold indices and numbers of choices.
func ComputeBaselines(gold, numChoices []int) (Baselines, error) {
	if len(gold) != len(numChoices) {
		return Baselines{}, fmt.Errorf("stats: baselines need one gold index per question, got %d and %d", len(gold), len(numChoices))
	}
	b := Baselines{Always: map[string]float64{}}
	if len(gold) == 0 {
		return b, nil
	}
	maxC := 0
	counts := map[int]int{}
	for i, g := range gold {
		if numChoices[i] < 1 || g < 0 || g >= numChoices[i] {
			return Baselines{}, fmt.Errorf("stats: question %d has gold %d with %d choices", i, g, numChoices[i])
		}
		b.Chance += 1 / float64(numChoices[i])
		counts[g]++
		maxC = max(maxC, numChoices[i])
	}
	n := float64(len(gold))
	b.Chance /= n
	for c := 0; c < maxC && c < 26; c++ {
		b.Always[string(rune('A'+c))] = float64(counts[c]) / n
	}
	return b, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// McNemarPower is the exact power of McNemar's exact two-sided test (McNemar above) at level
// alpha for n paired questions when a question is right only under condition B with probability
// pB and right only under A with probability pA (the discordant probabilities; pA + pB <= 1):
// the probability that the test rejects, summed over the number of discordant pairs
// d ~ Binomial(n, pA+pB) and, given d, the split b ~ Binomial(d, pB/(pA+pB)).
//
// Planning the suite's n with it (docs/zoo.md): an effect of +0.20 from a base of 0.25 with
// outcomes independent across conditions has pB = 0.75 x 0.45 and pA = 0.25 x 0.55.
func McNemarPower(n int, pA, pB, alpha float64) float64 {
	if n <= 0 || pA < 0 || pB < 0 || pA+pB <= 0 || pA+pB > 1 {
		return 0
	}
	pd := pA + pB
	q := pB / pd
	// reject[d] lists the splits b of d discordant pairs at which the exact test rejects; they
	// are the two tails b <= k or b >= d-k for the largest k with 2 P(X <= k) <= alpha.
	power := 0.0
	for d := 0; d <= n; d++ {
		wd := binomPMF(d, n, pd)
		if wd < 1e-300 {
			continue
		}
		k := -1
		for k+1 <= d/2 && math.Min(1, 2*BinomCDFHalf(k+1, d)) <= alpha {
			k++
		}
		if k < 0 {
			continue
		}
		tail := 0.0
		for b := 0; b <= k; b++ {
			tail += binomPMF(b, d, q) + binomPMF(d-b, d, q)
		}
		if 2*k == d { // both tails meet at the middle: count it once
			tail -= binomPMF(k, d, q)
		}
		power += wd * tail
	}
	return math.Min(1, power)
}

// McNemarSampleSize is the smallest n at which McNemarPower reaches power (at most maxN; 0 if
// it never does).
func McNemarSampleSize(pA, pB, alpha, power float64, maxN int) int {
	for n := 1; n <= maxN; n++ {
		if McNemarPower(n, pA, pB, alpha) >= power {
			return n
		}
	}
	return 0
}

// binomPMF is P(X = k) for X ~ Binomial(n, p), computed in log space.
func binomPMF(k, n int, p float64) float64 {
	if k < 0 || k > n {
		return 0
	}
	if p <= 0 {
		if k == 0 {
			return 1
		}
		return 0
	}
	if p >= 1 {
		if k == n {
			return 1
		}
		return 0
	}
	lgN, _ := math.Lgamma(float64(n + 1))
	lgK, _ := math.Lgamma(float64(k + 1))
	lgNK, _ := math.Lgamma(float64(n - k + 1))
	return math.Exp(lgN - lgK - lgNK + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
}
