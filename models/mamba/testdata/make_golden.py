#!/usr/bin/python3
"""Golden fixtures for models/mamba: tiny random Mamba v1 checkpoints as Hugging Face folders.

Independent reference: a plain-torch re-implementation of Hugging Face's MambaForCausalLM with the
slow path of MambaMixer (sequential scan over time steps), computed in float64. No transformers,
no safetensors package: config.json and model.safetensors are written by hand, with the writer
and loss/gradient harness the families' scripts share (models/internal/goldentest/golden_common.py).

For each model folder it writes config.json, model.safetensors and golden.json with
  sequences:  token id lists, each run alone
  logits:     [T*V] flattened float64 logits per sequence (weights as stored, widened)
  loss:       mean next-token cross-entropy over weighted positions of one sequence, with
              gradients for a few parameters (autograd in float64)

Run from the repository root:  /usr/bin/python3 models/mamba/testdata/make_golden.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "internal", "goldentest"))
import golden_common as gc  # noqa: E402  (safetensors writer, loss harness)

MODELS = {
    # conv_kernel 4, all biases, state 16, float32 weights.
    "k4_bias_s16": dict(conv_kernel=4, use_bias=True, use_conv_bias=True, state_size=16,
                        dtype="F32", hidden_size=16, num_hidden_layers=2, tie=True),
    # conv_kernel 2, no biases, state 4, float32 weights, explicit time_step_rank, untied head.
    "k2_nobias_s4": dict(conv_kernel=2, use_bias=False, use_conv_bias=False, state_size=4,
                         dtype="F32", hidden_size=16, num_hidden_layers=2, tie=False, rank=3),
    # conv_kernel 4, conv bias only (as mamba-2.8b-hf), state 16, bfloat16 weights.
    "k4_bf16": dict(conv_kernel=4, use_bias=False, use_conv_bias=True, state_size=16,
                    dtype="BF16", hidden_size=24, num_hidden_layers=2, tie=True),
}
VOCAB = 64


def config_for(spec):
    h = spec["hidden_size"]
    return {
        "architectures": ["MambaForCausalLM"],
        "model_type": "mamba",
        "vocab_size": VOCAB,
        "hidden_size": h,
        "state_size": spec["state_size"],
        "num_hidden_layers": spec["num_hidden_layers"],
        "layer_norm_epsilon": 1e-5,
        "expand": 2,
        "intermediate_size": 2 * h,
        "conv_kernel": spec["conv_kernel"],
        "use_bias": spec["use_bias"],
        "use_conv_bias": spec["use_conv_bias"],
        "hidden_act": "silu",
        "time_step_rank": spec.get("rank", "auto"),
        "residual_in_fp32": True,
        "tie_word_embeddings": spec["tie"],
        "pad_vocab_size_multiple": 8,
        "torch_dtype": "float32" if spec["dtype"] == "F32" else "bfloat16",
    }


def make_weights(spec, gen):
    h, n, k = spec["hidden_size"], spec["state_size"], spec["conv_kernel"]
    di = 2 * h
    r = spec.get("rank", math.ceil(h / 16))
    w = {}

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * std

    w["backbone.embeddings.weight"] = randn(VOCAB, h, std=0.3)
    for l in range(spec["num_hidden_layers"]):
        p = f"backbone.layers.{l}."
        w[p + "norm.weight"] = 1 + randn(h, std=0.2)
        w[p + "mixer.in_proj.weight"] = randn(2 * di, h, std=h ** -0.5)
        if spec["use_bias"]:
            w[p + "mixer.in_proj.bias"] = randn(2 * di, std=0.1)
        w[p + "mixer.conv1d.weight"] = randn(di, 1, k, std=0.5)
        if spec["use_conv_bias"]:
            w[p + "mixer.conv1d.bias"] = randn(di, std=0.1)
        w[p + "mixer.x_proj.weight"] = randn(r + 2 * n, di, std=di ** -0.5)
        w[p + "mixer.dt_proj.weight"] = randn(di, r, std=r ** -0.5)
        # dt around 0.01..1 (inverse softplus), A from 1..N with noise: strong and weak decays.
        dt = torch.exp(torch.rand(di, generator=gen, dtype=torch.float64) * (math.log(1.0) - math.log(0.01)) + math.log(0.01))
        w[p + "mixer.dt_proj.bias"] = dt + torch.log(-torch.expm1(-dt))
        a = torch.arange(1, n + 1, dtype=torch.float64).repeat(di, 1)
        w[p + "mixer.A_log"] = torch.log(a) + randn(di, n, std=0.3)
        w[p + "mixer.D"] = 1 + randn(di, std=0.2)
        w[p + "mixer.out_proj.weight"] = randn(h, di, std=di ** -0.5)
        if spec["use_bias"]:
            w[p + "mixer.out_proj.bias"] = randn(h, std=0.1)
    w["backbone.norm_f.weight"] = 1 + randn(h, std=0.2)
    if not spec["tie"]:
        w["lm_head.weight"] = randn(VOCAB, h, std=0.5)
    return w


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def mixer(w, p, x_in, cfg):
    """Hugging Face MambaMixer.slow_forward without cache; x_in [B, T, H]."""
    bsz, T, _ = x_in.shape
    di, n, k = cfg["intermediate_size"], cfg["state_size"], cfg["conv_kernel"]
    r = cfg["_rank"]
    proj = F.linear(x_in, w[p + "in_proj.weight"], w.get(p + "in_proj.bias")).transpose(1, 2)
    hs, gate = proj.chunk(2, dim=1)  # [B, DI, T]
    hs = F.conv1d(hs, w[p + "conv1d.weight"], w.get(p + "conv1d.bias"), padding=k - 1, groups=di)[..., :T]
    hs = F.silu(hs)
    ssm_p = F.linear(hs.transpose(1, 2), w[p + "x_proj.weight"])
    dt, Bm, Cm = torch.split(ssm_p, [r, n, n], dim=-1)
    dt = F.softplus(F.linear(dt, w[p + "dt_proj.weight"], w[p + "dt_proj.bias"])).transpose(1, 2)  # [B, DI, T]
    A = -torch.exp(w[p + "A_log"])
    dA = torch.exp(A[None, :, None, :] * dt[:, :, :, None])
    dBu = dt[:, :, :, None] * Bm[:, None, :, :] * hs[:, :, :, None]
    state = torch.zeros(bsz, di, n, dtype=x_in.dtype)
    ys = []
    for i in range(T):
        state = dA[:, :, i, :] * state + dBu[:, :, i, :]
        ys.append(torch.matmul(state, Cm[:, i, :].unsqueeze(-1))[:, :, 0])
    y = torch.stack(ys, dim=-1) + hs * w[p + "D"][None, :, None]
    y = y * F.silu(gate)
    return F.linear(y.transpose(1, 2), w[p + "out_proj.weight"], w.get(p + "out_proj.bias"))


def forward(w, tokens, cfg):
    x = w["backbone.embeddings.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = f"backbone.layers.{l}."
        x = x + mixer(w, p + "mixer.", rms_norm(x, w[p + "norm.weight"], cfg["layer_norm_epsilon"]), cfg)
    x = rms_norm(x, w["backbone.norm_f.weight"], cfg["layer_norm_epsilon"])
    head = w["backbone.embeddings.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def main():
    for mi, (name, spec) in enumerate(MODELS.items()):
        gen = torch.Generator().manual_seed(1000 + mi)
        cfg = config_for(spec)
        cfg_run = dict(cfg, _rank=spec.get("rank", math.ceil(spec["hidden_size"] / 16)))
        # the weights rounded to the stored dtype, and those values widened for the reference
        files = {n_: t.to(gc.TORCH_DTYPE[spec["dtype"]]) for n_, t in make_weights(spec, gen).items()}
        stored = {n_: t.double() for n_, t in files.items()}
        d = os.path.join(HERE, name)
        os.makedirs(d, exist_ok=True)
        gc.write_json(os.path.join(d, "config.json"), cfg, indent=2)
        gc.write_safetensors(os.path.join(d, "model.safetensors"), files, sort_names=False)

        seqs = [torch.randint(0, VOCAB, (T,), generator=gen).tolist() for T in (9, 17, 5)]
        golden = {"sequences": seqs, "weights_dtype": spec["dtype"], "logits": []}
        with torch.no_grad():
            for s in seqs:
                lg = forward(stored, torch.tensor([s]), cfg_run)[0]
                golden["logits"].append([round(v, 10) for v in lg.flatten().tolist()])

        # Loss and gradients on one sequence: mean weighted cross-entropy of next tokens.
        T = 12
        seq = torch.randint(0, VOCAB, (T + 1,), generator=gen).tolist()
        grad_names = ["backbone.layers.0.mixer.A_log", "backbone.layers.1.mixer.conv1d.weight",
                      "backbone.layers.0.mixer.dt_proj.bias", "backbone.layers.1.mixer.in_proj.weight",
                      "backbone.embeddings.weight"]
        golden["loss"] = gc.golden_loss(lambda P, tokens: forward(P, torch.tensor([tokens]), cfg_run)[0], stored,
                                        seq[:T], seq[1:], [0.0] * 3 + [1.0] * (T - 3), grad_names,
                                        lambda g: [round(v, 12) for v in g.flatten().tolist()])
        gc.write_json(os.path.join(d, "golden.json"), golden)
        print(name, "loss", golden["loss"]["value"])


if __name__ == "__main__":
    gc.seed()
    main()
