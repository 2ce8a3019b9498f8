#!/usr/bin/python3
"""PyTorch (CPU, 2 threads) throughput of the ~10M-parameter Gemma used by models/gemma's Go
benchmarks (bench_test.go: BenchmarkForward, BenchmarkTrainStep): same config, batch 8 x 256
tokens, the same reference forward pass as make_golden.py (Hugging Face Gemma semantics), and a
train step of mean cross-entropy + backward + torch.optim.AdamW (lr 1e-3, weight decay 0.01).

Run: /usr/bin/python3 models/gemma/testdata/bench_torch.py [steps]

Kept for the tables of docs/gemma.md, measured with it against the Go benchmarks of that time (one
graph, lr 1e-3, no clipping). Since issue 19 BenchmarkTrainStep times the trainer's own step; the
peer of the production paths is scripts/bench_peer.py (`make bench-peer`).
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import BASE_CONFIG, forward, param_shapes  # noqa: E402

CONFIG = dict(BASE_CONFIG, vocab_size=8192, hidden_size=256, intermediate_size=1024, num_hidden_layers=8,
              num_attention_heads=4, num_key_value_heads=1, head_dim=64, max_position_embeddings=1024)
BATCH, SEQ = 8, 256


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.set_num_threads(2)
    torch.manual_seed(0)
    W = {n: torch.nn.Parameter(0.02 * torch.randn(s)) for n, s in param_shapes(CONFIG).items()}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, parameters {sum(p.numel() for p in W.values())}")
    data = torch.randint(0, CONFIG["vocab_size"], (BATCH, SEQ + 1))
    tokens, targets = data[:, :-1], data[:, 1:]

    with torch.no_grad():
        forward(W, CONFIG, tokens)  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            forward(W, CONFIG, tokens)
        dt = (time.perf_counter() - t0) / steps
    print(f"forward: {dt * 1e3:.0f} ms/step, {BATCH * SEQ / dt:.0f} tokens/s")

    opt = torch.optim.AdamW(W.values(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    def train_step():
        opt.zero_grad(set_to_none=True)
        logits = forward(W, CONFIG, tokens)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, CONFIG["vocab_size"]), targets.reshape(-1))
        loss.backward()
        opt.step()
        return float(loss)

    first = train_step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        last = train_step()
    dt = (time.perf_counter() - t0) / steps
    print(f"train step: {dt * 1e3:.0f} ms/step, {BATCH * SEQ / dt:.0f} tokens/s (loss {first:.4f} -> {last:.4f})")


if __name__ == "__main__":
    main()
