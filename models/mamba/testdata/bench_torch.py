#!/usr/bin/python3
"""PyTorch (CPU, 2 threads) throughput of the ~10M-parameter Mamba used by models/mamba's Go
benchmarks (bench_test.go: BenchmarkForward, BenchmarkTrainStep): same config, 2,048 tokens per
step as 8 x 256 and 1 x 2048, the forward pass of make_golden.py (Hugging Face MambaMixer's slow
path: a Python loop over time steps), and a train step of mean cross-entropy + backward +
torch.optim.AdamW (lr 1e-3, weight decay 0.01).

Run: /usr/bin/python3 models/mamba/testdata/bench_torch.py [steps] [train_steps]
(train_steps defaults to steps; 0 skips training. Autograd through the time loop is slow: one
train step of 2,048 tokens takes minutes, so the train step is timed without a warm-up step.)

Kept for the tables of docs/mamba.md, measured with it against the Go benchmarks of that time (one
graph, lr 1e-3, no clipping). Since issue 19 BenchmarkTrainStep times the trainer's own step; the
peer of the production paths is scripts/bench_peer.py (`make bench-peer`).
"""
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import forward  # noqa: E402

H, LAYERS, VOCAB, N, K = 256, 18, 8192, 16, 4
DI, R = 2 * H, math.ceil(H / 16)
CONFIG = {"intermediate_size": DI, "state_size": N, "conv_kernel": K, "_rank": R, "num_hidden_layers": LAYERS,
          "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True}
SHAPES = [(8, 256), (1, 2048)]


def params():
    shapes = {"backbone.embeddings.weight": (VOCAB, H), "backbone.norm_f.weight": (H,)}
    for l in range(LAYERS):
        p = f"backbone.layers.{l}."
        shapes.update({p + "norm.weight": (H,), p + "mixer.in_proj.weight": (2 * DI, H),
                       p + "mixer.conv1d.weight": (DI, 1, K), p + "mixer.conv1d.bias": (DI,),
                       p + "mixer.x_proj.weight": (R + 2 * N, DI), p + "mixer.dt_proj.weight": (DI, R),
                       p + "mixer.dt_proj.bias": (DI,), p + "mixer.A_log": (DI, N), p + "mixer.D": (DI,),
                       p + "mixer.out_proj.weight": (H, DI)})
    return {n: torch.nn.Parameter(0.02 * torch.randn(s)) for n, s in shapes.items()}


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    train_steps = int(sys.argv[2]) if len(sys.argv) > 2 else steps
    torch.set_num_threads(2)
    torch.manual_seed(0)
    W = params()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, parameters {sum(p.numel() for p in W.values())}")
    for B, T in SHAPES:
        data = torch.randint(0, VOCAB, (B, T + 1))
        tokens, targets = data[:, :-1], data[:, 1:]
        with torch.no_grad():
            forward(W, tokens, CONFIG)  # warm-up
            t0 = time.perf_counter()
            for _ in range(steps):
                forward(W, tokens, CONFIG)
            dt = (time.perf_counter() - t0) / steps
        print(f"B={B} T={T} forward: {dt * 1e3:.0f} ms/step, {B * T / dt:.0f} tokens/s")

        opt = torch.optim.AdamW(W.values(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

        def train_step():
            opt.zero_grad(set_to_none=True)
            logits = forward(W, tokens, CONFIG)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
            loss.backward()
            opt.step()
            return float(loss)

        if train_steps == 0:
            continue
        t0 = time.perf_counter()
        first = last = train_step()
        for _ in range(train_steps - 1):
            last = train_step()
        dt = (time.perf_counter() - t0) / train_steps
        print(f"B={B} T={T} train step: {dt * 1e3:.0f} ms/step, {B * T / dt:.0f} tokens/s (loss {first:.4f} -> {last:.4f})")


if __name__ == "__main__":
    main()
