#!/usr/bin/python3
"""PyTorch peer of `perpetual bench`: the same model config, batch and length, timed the same way.

Builds the model a config.json describes (Gemma or Mamba, the configs of the Go benchmarks:
models/gemma/testdata/bench_config.json, models/mamba/testdata/bench_config.json) with N(0, 0.02)
weights and times, after --warmup untimed runs, --repeats runs of

  scoring:  the forward pass under no_grad, full [B, T, V] logits, log_softmax of the last
            position gathered at a target (what LogLikelihood with a one-token continuation does);
  training: forward, mean next-token cross-entropy, backward, clip_grad_norm_(1.0) and
            torch.optim.AdamW (lr 2e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on matrices
            but not on norms, biases or Mamba's A_log): the trainer's recipe.

The forward passes are the plain-torch references of the golden tests (models/gemma/testdata/
make_golden.py, Hugging Face Gemma semantics; models/mamba/testdata/make_golden.py, Hugging Face
MambaMixer). For Mamba the default scan is a log-depth odd-even reduction written in torch ops
(`--mamba-scan parallel`, the algorithm of models/mamba/scan.go: vectorised, so autograd through
it takes seconds); `--mamba-scan loop` is Hugging Face's slow path, a Python loop over time
(training through it takes minutes per step). `--check` verifies the parallel scan against the
loop in float64 and exits.

Prints one JSON object (stdout) shaped like the phases of `perpetual bench --json`.
Run with the OpenBLAS variables the machine sets for other work unset, e.g.
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 scripts/bench_peer.py \
      --config models/gemma/testdata/bench_config.json --batch 8 --length 256
"""
import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_reference(family):
    """The golden reference module of a family (two files share the name make_golden.py)."""
    path = os.path.join(ROOT, "models", family, "testdata", "make_golden.py")
    spec = importlib.util.spec_from_file_location(f"{family}_golden", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- Gemma

def gemma_model(cfg):
    ref = load_reference("gemma")
    c = dict(ref.BASE_CONFIG, **cfg)
    if not c.get("head_dim"):
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    if not c.get("num_key_value_heads"):
        c["num_key_value_heads"] = c["num_attention_heads"]
    shapes = ref.param_shapes(c)
    return c, shapes, lambda W, tokens: ref.forward(W, c, tokens)


# ---------------------------------------------------------------- Mamba

def mamba_config(cfg):
    c = {"state_size": 16, "expand": 2, "conv_kernel": 4, "layer_norm_epsilon": 1e-5, "use_bias": False,
         "use_conv_bias": True, "tie_word_embeddings": True}
    c.update(cfg)
    h = c["hidden_size"]
    c.setdefault("intermediate_size", c["expand"] * h)
    rank = c.get("time_step_rank", "auto")
    c["_rank"] = math.ceil(h / 16) if rank in (None, "auto") else int(rank)
    return c


def mamba_shapes(c):
    h, di, n, k, r = c["hidden_size"], c["intermediate_size"], c["state_size"], c["conv_kernel"], c["_rank"]
    shapes = {"backbone.embeddings.weight": (c["vocab_size"], h)}
    for l in range(c["num_hidden_layers"]):
        p = f"backbone.layers.{l}."
        shapes[p + "norm.weight"] = (h,)
        shapes[p + "mixer.in_proj.weight"] = (2 * di, h)
        if c["use_bias"]:
            shapes[p + "mixer.in_proj.bias"] = (2 * di,)
        shapes[p + "mixer.conv1d.weight"] = (di, 1, k)
        if c["use_conv_bias"]:
            shapes[p + "mixer.conv1d.bias"] = (di,)
        shapes[p + "mixer.x_proj.weight"] = (r + 2 * n, di)
        shapes[p + "mixer.dt_proj.weight"] = (di, r)
        shapes[p + "mixer.dt_proj.bias"] = (di,)
        shapes[p + "mixer.A_log"] = (di, n)
        shapes[p + "mixer.D"] = (di,)
        shapes[p + "mixer.out_proj.weight"] = (h, di)
        if c["use_bias"]:
            shapes[p + "mixer.out_proj.bias"] = (h,)
    shapes["backbone.norm_f.weight"] = (h,)
    if not c["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (c["vocab_size"], h)
    return shapes


def scan_pairwise(a, b):
    """States s_t = a_t s_{t-1} + b_t (s_{-1} = 0) along axis 1 of a, b [B, T, ...], by odd-even
    reduction: steps 2k and 2k+1 combine into one step of the same form, the half-length problem
    gives the odd states, one multiply-add gives the even ones. O(T) work, log2(T) levels."""
    T = a.shape[1]
    if T == 1:
        return b
    if T % 2:  # one identity step at the end (a = 1, b = 0), cut off afterwards
        a = torch.cat((a, torch.ones_like(a[:, :1])), 1)
        b = torch.cat((b, torch.zeros_like(b[:, :1])), 1)
    ae, ao, be, bo = a[:, 0::2], a[:, 1::2], b[:, 0::2], b[:, 1::2]
    s_odd = scan_pairwise(ao * ae, ao * be + bo)
    prev = torch.cat((torch.zeros_like(s_odd[:, :1]), s_odd[:, :-1]), 1)  # s_{2k-1}, zero for k = 0
    s_even = ae * prev + be
    s = torch.stack((s_even, s_odd), 2).reshape(a.shape)
    return s[:, :T]


def mixer_parallel(w, p, x_in, cfg):
    """Hugging Face MambaMixer (as make_golden.mixer) with the time loop replaced by scan_pairwise
    over [B, T, DI, N] tensors."""
    _, T, _ = x_in.shape
    di, n, k, r = cfg["intermediate_size"], cfg["state_size"], cfg["conv_kernel"], cfg["_rank"]
    proj = F.linear(x_in, w[p + "in_proj.weight"], w.get(p + "in_proj.bias")).transpose(1, 2)
    hs, gate = proj.chunk(2, dim=1)  # [B, DI, T]
    hs = F.conv1d(hs, w[p + "conv1d.weight"], w.get(p + "conv1d.bias"), padding=k - 1, groups=di)[..., :T]
    hs = F.silu(hs)
    ssm_p = F.linear(hs.transpose(1, 2), w[p + "x_proj.weight"])
    dt, Bm, Cm = torch.split(ssm_p, [r, n, n], dim=-1)
    dt = F.softplus(F.linear(dt, w[p + "dt_proj.weight"], w[p + "dt_proj.bias"]))  # [B, T, DI]
    A = -torch.exp(w[p + "A_log"])  # [DI, N]
    dA = torch.exp(dt[..., None] * A)  # [B, T, DI, N]
    dBu = (dt * hs.transpose(1, 2))[..., None] * Bm[:, :, None, :]
    s = scan_pairwise(dA, dBu)
    y = (s * Cm[:, :, None, :]).sum(-1).transpose(1, 2)  # [B, DI, T]
    y = y + hs * w[p + "D"][None, :, None]
    y = y * F.silu(gate)
    return F.linear(y.transpose(1, 2), w[p + "out_proj.weight"], w.get(p + "out_proj.bias"))


def mamba_forward(ref, mixer, W, tokens, c):
    x = W["backbone.embeddings.weight"][tokens]
    for l in range(c["num_hidden_layers"]):
        p = f"backbone.layers.{l}."
        x = x + mixer(W, p + "mixer.", ref.rms_norm(x, W[p + "norm.weight"], c["layer_norm_epsilon"]), c)
    x = ref.rms_norm(x, W["backbone.norm_f.weight"], c["layer_norm_epsilon"])
    head = W["backbone.embeddings.weight"] if c["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T


def mamba_model(cfg, scan):
    ref = load_reference("mamba")
    c = mamba_config(cfg)
    mixer = mixer_parallel if scan == "parallel" else ref.mixer
    return c, mamba_shapes(c), lambda W, tokens: mamba_forward(ref, mixer, W, tokens, c)


def check_scan():
    """The parallel mixer equals the loop (Hugging Face's slow path) in value and gradient."""
    ref = load_reference("mamba")
    torch.manual_seed(0)
    c = mamba_config({"vocab_size": 32, "hidden_size": 8, "num_hidden_layers": 1, "state_size": 4, "conv_kernel": 3,
                      "use_bias": True})
    worst = 0.0
    for T in (1, 2, 3, 7, 8, 13, 32):
        W = {n: (0.5 * torch.randn(s, dtype=torch.float64)).requires_grad_(True) for n, s in mamba_shapes(c).items()}
        x = torch.randn(2, T, c["hidden_size"], dtype=torch.float64)
        p = "backbone.layers.0.mixer."
        outs, grads = [], []
        for mixer in (ref.mixer, mixer_parallel):
            y = mixer(W, p, x, c)
            # At T = 1 the decay multiplies the zero initial state only: the parallel scan
            # skips it (no gradient path), the loop multiplies by zero.
            (g,) = torch.autograd.grad((y * y).sum(), [W[p + "A_log"]], allow_unused=True)
            if g is None:
                g = torch.zeros_like(W[p + "A_log"])
            outs.append(y)
            grads.append(g)
        err = max((outs[0] - outs[1]).abs().max().item() / (outs[0].abs().max().item() + 1e-30),
                  (grads[0] - grads[1]).abs().max().item() / (grads[0].abs().max().item() + 1e-30))
        worst = max(worst, err)
        if not err < 1e-10:
            sys.exit(f"parallel scan != loop at T={T}: relative error {err:.3g}")
    print(f"parallel scan == loop (values and A_log gradients), worst relative error {worst:.3g}")


# ---------------------------------------------------------------- timing

def decays(name, shape):
    n = name.lower()
    return len(shape) >= 2 and "norm" not in n and not n.endswith(".bias") and not n.endswith("a_log")


def time_runs(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return seconds


def summary(seconds, tokens):
    med = statistics.median(seconds)
    return {"tokens": tokens, "seconds": seconds, "median_s": med, "min_s": min(seconds), "max_s": max(seconds),
            "tokens_per_s": tokens / med, "tokens_per_s_min": tokens / max(seconds),
            "tokens_per_s_max": tokens / min(seconds)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="config.json of a Gemma or Mamba model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--phases", default="scoring,training")
    ap.add_argument("--mamba-scan", choices=("parallel", "loop"), default="parallel")
    ap.add_argument("--check", action="store_true", help="check the parallel Mamba scan against the loop and exit")
    args = ap.parse_args()
    if args.check:
        check_scan()
        return
    if not args.config:
        ap.error("--config is required (e.g. models/gemma/testdata/bench_config.json)")
    if args.batch < 1 or args.length < 2 or args.warmup < 1 or args.repeats < 1 or args.threads < 1:
        ap.error("need --batch >= 1, --length >= 2, --warmup >= 1, --repeats >= 1, --threads >= 1")
    phases = args.phases.split(",")
    if any(p not in ("scoring", "training") for p in phases):
        ap.error(f"--phases {args.phases}: use scoring and/or training")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(args.config) as f:
        cfg = json.load(f)
    family = cfg.get("model_type")
    if family == "gemma":
        c, shapes, forward = gemma_model(cfg)
        if args.length > c["max_position_embeddings"]:
            ap.error(f"--length {args.length} exceeds max_position_embeddings {c['max_position_embeddings']}")
    elif family == "mamba":
        c, shapes, forward = mamba_model(cfg, args.mamba_scan)
    else:
        sys.exit(f"{args.config}: model_type {family!r} is not gemma or mamba")
    W = {n: torch.nn.Parameter(0.02 * torch.randn(s)) for n, s in shapes.items()}
    V = cfg["vocab_size"]
    data = torch.randint(0, V, (args.batch, args.length + 1))
    tokens, targets = data[:, :-1], data[:, 1:]
    tokens_per_run = args.batch * args.length
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "peer": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
        "family": family, "config": args.config, "params": sum(p.numel() for p in W.values()),
        "batch": args.batch, "length": args.length, "warmup": args.warmup, "repeats": args.repeats,
        "openblas_env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS") if k in os.environ},
    }
    if family == "mamba":
        report["mamba_scan"] = args.mamba_scan

    if "scoring" in phases:
        def score():
            with torch.no_grad():
                logits = forward(W, tokens)
                lp = torch.log_softmax(logits[:, -1].float(), -1).gather(-1, targets[:, -1:])
                if not torch.isfinite(lp).all():
                    sys.exit("scoring: non-finite log-probability")
        report["scoring"] = summary(time_runs(score, args.warmup, args.repeats), tokens_per_run)

    if "training" in phases:
        groups = [{"params": [W[n] for n in W if decays(n, W[n].shape)], "weight_decay": 0.01},
                  {"params": [W[n] for n in W if not decays(n, W[n].shape)], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=2e-4, betas=(0.9, 0.999), eps=1e-8)
        losses = []

        def train_step():
            opt.zero_grad(set_to_none=True)
            logits = forward(W, tokens)
            loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(W.values(), 1.0)
            opt.step()
            losses.append(float(loss))
        t = summary(time_runs(train_step, args.warmup, args.repeats), tokens_per_run)
        t["loss_first"], t["loss_last"] = losses[0], losses[-1]
        report["training"] = t

    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
