package stats

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fixtures is testdata/fixtures.json, written by testdata/reference.py (independent Python).
type fixtures struct {
	Cases []struct {
		A, B       []int
		Gold       []int     `json:"gold"`
		NumChoices []int     `json:"num_choices"`
		StderrA    float64   `json:"stderr_a"`
		WilsonA    []float64 `json:"wilson_a"`
		McNemar    struct {
			OnlyA int `json:"only_a"`
			OnlyB int `json:"only_b"`
			P     float64
		}
		Bootstrap struct {
			Diff, Lo, Hi, P float64
			Iterations      int
			Seed            string
		}
		Baselines Baselines
	}
	BinomCDFHalf []struct {
		K, N int
		CDF  float64
	} `json:"binom_cdf_half"`
}

func loadFixtures(t *testing.T) fixtures {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixtures
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("fixtures.json has no cases")
	}
	return f
}

func bools(xs []int) []bool {
	out := make([]bool, len(xs))
	for i, x := range xs {
		out[i] = x != 0
	}
	return out
}

func floats(xs []int) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func TestAgainstPythonReference(t *testing.T) {
	f := loadFixtures(t)
	for i, c := range f.Cases {
		a, b := bools(c.A), bools(c.B)
		if got := StdErr(floats(c.A)); !near(got, c.StderrA, 1e-12) {
			t.Errorf("case %d: stderr %v, want %v", i, got, c.StderrA)
		}
		k := 0
		for _, x := range c.A {
			k += x
		}
		lo, hi := Wilson(k, len(c.A), Z95)
		if !near(lo, c.WilsonA[0], 1e-12) || !near(hi, c.WilsonA[1], 1e-12) {
			t.Errorf("case %d: wilson [%v, %v], want %v", i, lo, hi, c.WilsonA)
		}
		m, err := McNemar(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if m.OnlyA != c.McNemar.OnlyA || m.OnlyB != c.McNemar.OnlyB || !near(m.P, c.McNemar.P, 1e-10) {
			t.Errorf("case %d: mcnemar %+v, want %+v", i, m, c.McNemar)
		}
		seed, err := strconv.ParseUint(c.Bootstrap.Seed, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		bs, err := PairedBootstrap(a, b, c.Bootstrap.Iterations, seed)
		if err != nil {
			t.Fatal(err)
		}
		if bs.Diff != c.Bootstrap.Diff || bs.Lo != c.Bootstrap.Lo || bs.Hi != c.Bootstrap.Hi || !near(bs.P, c.Bootstrap.P, 1e-15) {
			t.Errorf("case %d: bootstrap %+v, want %+v", i, bs, c.Bootstrap)
		}
		bl, err := ComputeBaselines(c.Gold, c.NumChoices)
		if err != nil {
			t.Fatal(err)
		}
		if !near(bl.Chance, c.Baselines.Chance, 1e-12) || len(bl.Always) != len(c.Baselines.Always) {
			t.Errorf("case %d: baselines %+v, want %+v", i, bl, c.Baselines)
		}
		for letter, want := range c.Baselines.Always {
			if !near(bl.Always[letter], want, 1e-12) {
				t.Errorf("case %d: always-%s %v, want %v", i, letter, bl.Always[letter], want)
			}
		}
	}
	for _, c := range f.BinomCDFHalf {
		got := BinomCDFHalf(c.K, c.N)
		if c.CDF == 0 {
			if got > 1e-300 {
				t.Errorf("BinomCDFHalf(%d,%d) = %g, want ~0", c.K, c.N, got)
			}
			continue
		}
		if !near(got, c.CDF, 1e-9) {
			t.Errorf("BinomCDFHalf(%d,%d) = %v, want %v", c.K, c.N, got, c.CDF)
		}
	}
}

func TestEdgeCases(t *testing.T) {
	if !math.IsNaN(StdErr([]float64{1})) {
		t.Error("StdErr of one value should be NaN")
	}
	if lo, hi := Wilson(0, 0, Z95); lo != 0 || hi != 1 {
		t.Errorf("Wilson(0,0) = [%v,%v]", lo, hi)
	}
	if lo, hi := Wilson(10, 10, Z95); hi < 1-1e-12 || lo <= 0.6 {
		t.Errorf("Wilson(10,10) = [%v,%v]", lo, hi)
	}
	if _, err := McNemar([]bool{true}, nil); err == nil {
		t.Error("McNemar accepted unpaired outcomes")
	}
	if m, _ := McNemar([]bool{true, false}, []bool{true, false}); m.P != 1 {
		t.Errorf("McNemar without discordant pairs: p=%v, want 1", m.P)
	}
	if _, err := PairedBootstrap(nil, nil, 10, 1); err == nil {
		t.Error("bootstrap accepted no questions")
	}
	if _, err := ComputeBaselines([]int{4}, []int{4}); err == nil {
		t.Error("baselines accepted gold out of range")
	}
	// Same seed, same result; different seed, (almost surely) different interval draws.
	a := []bool{true, false, true, true, false, false, true, false, true, true}
	b := []bool{false, false, true, true, true, false, true, true, true, true}
	r1, _ := PairedBootstrap(a, b, 300, 7)
	r2, _ := PairedBootstrap(a, b, 300, 7)
	if r1 != r2 {
		t.Errorf("bootstrap not reproducible: %+v vs %+v", r1, r2)
	}
	if r1.Diff != 0.1 || r1.Lo > r1.Diff || r1.Hi < r1.Diff {
		t.Errorf("bootstrap interval %+v does not contain the observed diff 0.1", r1)
	}
}

// McNemarPower against a Monte Carlo run of the test itself, and the sample sizes the default
// suite is planned with (docs/zoo.md).
func TestMcNemarPowerMatchesSimulation(t *testing.T) {
	const n, pA, pB, alpha = 60, 0.1375, 0.3375, 0.05
	exact := McNemarPower(n, pA, pB, alpha)
	rng := NewSplitMix64(42)
	const trials = 20000
	rejected := 0
	a, b := make([]bool, n), make([]bool, n)
	for range trials {
		for i := range a {
			u := float64(rng.Next()>>11) / (1 << 53)
			a[i], b[i] = u < pA, u >= pA && u < pA+pB // right only under A, or only under B
		}
		r, err := McNemar(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if r.P < alpha || r.P == alpha {
			rejected++
		}
	}
	sim := float64(rejected) / trials
	if math.Abs(sim-exact) > 0.015 {
		t.Fatalf("exact power %.4f, simulated %.4f", exact, sim)
	}
	if p := McNemarPower(n, 0.2, 0.2, alpha); p > alpha {
		t.Fatalf("size under the null %.4f exceeds alpha", p)
	}
	// +0.20 from a base of 0.25, outcomes independent across conditions.
	if got := McNemarSampleSize(0.25*0.55, 0.75*0.45, 0.05, 0.8, 1000); got < 80 || got > 100 {
		t.Fatalf("sample size for +0.20 over 0.25: %d, want 98 (Connor's normal approximation gives 91)", got)
	}
}
