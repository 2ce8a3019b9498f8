#!/usr/bin/env python3
"""Independent reference for evaluation/stats (no scipy needed).

Writes fixtures.json: random paired outcome vectors and, for each, the harness standard error,
Wilson 95% intervals, McNemar's exact p-value (binomial tails with exact integer arithmetic),
the paired bootstrap (SplitMix64 stream, as documented in stats.go) and the baselines.

Run: /usr/bin/python3 evaluation/stats/testdata/reference.py  (from the repository root)
"""
import json
import math
import os
import random
from fractions import Fraction

MASK = (1 << 64) - 1
Z95 = 1.959963984540054


def harness_stderr(xs):
    # lm-eval: sample_stddev (n-1) / sqrt(n)
    n = len(xs)
    mu = sum(xs) / n
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (n - 1)) / math.sqrt(n)


def wilson(k, n, z=Z95):
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(a, b):
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = only_a + only_b
    k = min(only_a, only_b)
    if n == 0:
        return only_a, only_b, 1.0
    tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2 ** n)
    return only_a, only_b, float(min(Fraction(1), 2 * tail))


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def paired_bootstrap(a, b, iters, seed):
    n = len(a)
    delta = [int(y) - int(x) for x, y in zip(a, b)]
    obs = sum(delta)
    rng = SplitMix64(seed)
    diffs, extreme = [], 0
    for _ in range(iters):
        s = sum(delta[rng.next() % n] for _ in range(n))
        diffs.append(s / n)
        if abs(s - obs) >= abs(obs):
            extreme += 1
    diffs.sort()
    lo = diffs[math.floor(0.025 * iters)]
    hi = diffs[math.ceil(0.975 * iters) - 1]
    return {"diff": obs / n, "lo": lo, "hi": hi, "p": (1 + extreme) / (1 + iters)}


def baselines(gold, nchoices):
    n = len(gold)
    chance = sum(1 / c for c in nchoices) / n
    always = {chr(65 + c): sum(1 for g in gold if g == c) / n for c in range(max(nchoices))}
    return {"chance": chance, "always": always}


def main():
    rnd = random.Random(20261123)
    cases = []
    for n, pa, pb, iters in [(10, 0.5, 0.6, 200), (57, 0.3, 0.45, 500), (400, 0.4, 0.42, 300),
                             (1000, 0.25, 0.35, 100), (25, 0.9, 0.9, 400)]:
        a = [rnd.random() < pa for _ in range(n)]
        b = [(x if rnd.random() < 0.5 else rnd.random() < pb) for x in a]
        gold = [rnd.randrange(4) for _ in range(n)]
        nch = [rnd.choice([2, 3, 4, 4, 4]) for _ in range(n)]
        gold = [g % c for g, c in zip(gold, nch)]
        seed = rnd.getrandbits(64)
        oa, ob, p = mcnemar_exact(a, b)
        ka = sum(a)
        cases.append({
            "a": [int(x) for x in a], "b": [int(x) for x in b],
            "gold": gold, "num_choices": nch,
            "stderr_a": harness_stderr([float(x) for x in a]),
            "wilson_a": list(wilson(ka, n)),
            "mcnemar": {"only_a": oa, "only_b": ob, "p": p},
            "bootstrap": dict(paired_bootstrap(a, b, iters, seed), iterations=iters, seed=str(seed)),
            "baselines": baselines(gold, nch),
        })
    # Large discordant counts, where a naive binomial sum overflows float64.
    big = []
    for k, n in [(0, 5), (3, 20), (480, 1000), (2000, 4100), (10, 3000)]:
        tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2 ** n)
        big.append({"k": k, "n": n, "cdf": float(tail)})
    out = {"cases": cases, "binom_cdf_half": big}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
