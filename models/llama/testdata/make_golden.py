#!/usr/bin/python3
"""Golden fixtures for models/llama: tiny random Llama, Qwen2 and Qwen3 checkpoints and reference outputs.

An independent plain-PyTorch re-implementation of Hugging Face's LlamaForCausalLM,
Qwen2ForCausalLM and Qwen3ForCausalLM forward passes (modeling_llama, modeling_qwen2,
modeling_qwen3): unscaled embeddings; RMSNorm normalised in float32, cast back, then times w;
q/k/v/o projections with the biases each model type has; Qwen3's per-head q_norm/k_norm before
RoPE; rotate_half RoPE whose inverse frequencies are computed as Transformers' rope init functions
do (default, linear, llama3); repeat_kv grouped-query attention; float32 softmax; SiLU-gated MLP
(with mlp_bias); final norm; tied or untied head; float32 logits. No `transformers` or
`safetensors` package is needed: checkpoints are written by hand in the safetensors format by
models/internal/goldentest/golden_common.py, the writer and golden.json harness (logits, loss,
autograd gradients of this script's forward) the families' scripts share.

The float32 references are computed in float64 from the stored weights (a bf16 checkpoint's
weights widened exactly), so they are the exact values a float32 implementation approximates.

Each model folder gets config.json, model.safetensors (or shards + model.safetensors.index.json)
and golden.json (the format models/lm/lmtest reads) with:
  sequences: token ids (one list per sequence, different lengths)
  logits:    per sequence, logits [T, V] flattened, each sequence run alone (batch 1)
  logits_bf16 (bf16 models only): the same computed in bfloat16 (weights and activations), with
             Transformers' casts (float32 norms, rope tables and softmax, cast back to bf16)
  loss:      for a training-style loss (mean cross-entropy over chosen positions): tokens, targets,
             weights (1 = counted), the loss value and gradients w.r.t. a few parameters.

Numbers are written with 8 significant digits to keep the fixtures small.

Run from anywhere: /usr/bin/python3 models/llama/testdata/make_golden.py
"""
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "internal", "goldentest"))
import golden_common as gc  # noqa: E402  (safetensors writer, golden.json harness)

BASE = {
    "vocab_size": 61,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 256,
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "initializer_range": 0.02,
    "use_cache": True,
}

# name, config, weight dtype, number of shards, write an lm_head.weight alias of a tied embedding
MODELS = [
    # Llama 3.1 style: llama3 rope scaling, grouped-query attention, explicit head_dim 12 != 32/4,
    # untied head, two shards. rope_theta 100 and original_max_position_embeddings 32 put the six
    # frequencies in all three llama3 bands (kept, blended, divided by factor).
    ("llama3_gqa", dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama",
                        num_key_value_heads=2, head_dim=12, rms_norm_eps=1e-5, rope_theta=100.0,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
                        attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
                        pretraining_tp=1), torch.float32, 2, False),
    # Qwen2 / Qwen2.5: q/k/v biases (no o bias), multi-query, head_dim from hidden/heads, untied.
    ("qwen2_bias", dict(BASE, architectures=["Qwen2ForCausalLM"], model_type="qwen2",
                        num_key_value_heads=1, rms_norm_eps=1e-6, rope_theta=1000000.0, rope_scaling=None,
                        use_sliding_window=False, sliding_window=4096, max_window_layers=2,
                        attention_dropout=0.0, tie_word_embeddings=False), torch.float32, 1, False),
    # Qwen3: per-head q_norm/k_norm before RoPE, explicit head_dim 16 != 32/4, tied head.
    ("qwen3_qknorm", dict(BASE, architectures=["Qwen3ForCausalLM"], model_type="qwen3",
                          num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, rope_theta=1000000.0,
                          rope_scaling=None, attention_bias=False, use_sliding_window=False,
                          sliding_window=None, max_window_layers=2, attention_dropout=0.0,
                          tie_word_embeddings=True), torch.float32, 1, False),
    # bf16 Llama with every bias (attention_bias, mlp_bias), multi-head, linear rope scaling in the
    # older "type" spelling, tied head stored also as lm_head.weight.
    ("llama_bf16", dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama",
                        num_key_value_heads=4, rms_norm_eps=1e-5, rope_theta=10000.0,
                        rope_scaling={"type": "linear", "factor": 2.0},
                        attention_bias=True, mlp_bias=True, tie_word_embeddings=True), torch.bfloat16, 1, True),
]


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def biases(c):
    """(q/k/v bias, o bias, mlp bias, q/k norm) as each Transformers class reads its config."""
    t = c["model_type"]
    if t == "llama":
        return c["attention_bias"], c["attention_bias"], c["mlp_bias"], False
    if t == "qwen2":
        return True, False, False, False
    if t == "qwen3":
        return c["attention_bias"], c["attention_bias"], False, True
    raise ValueError(t)


def param_shapes(c):
    H, KV, D, h, I = c["num_attention_heads"], c["num_key_value_heads"], head_dim(c), c["hidden_size"], c["intermediate_size"]
    qkv_b, o_b, mlp_b, qk_norm = biases(c)
    shapes = {"model.embed_tokens.weight": (c["vocab_size"], h)}

    def lin(name, out, inp, bias):
        shapes[name + ".weight"] = (out, inp)
        if bias:
            shapes[name + ".bias"] = (out,)

    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = (h,)
        lin(p + "self_attn.q_proj", H * D, h, qkv_b)
        lin(p + "self_attn.k_proj", KV * D, h, qkv_b)
        lin(p + "self_attn.v_proj", KV * D, h, qkv_b)
        lin(p + "self_attn.o_proj", h, H * D, o_b)
        if qk_norm:
            shapes[p + "self_attn.q_norm.weight"] = (D,)
            shapes[p + "self_attn.k_norm.weight"] = (D,)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
        lin(p + "mlp.gate_proj", I, h, mlp_b)
        lin(p + "mlp.up_proj", I, h, mlp_b)
        lin(p + "mlp.down_proj", h, I, mlp_b)
    shapes["model.norm.weight"] = (h,)
    if not c["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (c["vocab_size"], h)
    return shapes


def random_weights(c, gen):
    """Weights large enough that logits are far from uniform (std 0.02 would make every test pass)."""
    weights = {}
    for name, shape in param_shapes(c).items():
        if name.endswith("norm.weight"):
            w = 1.0 + 0.3 * torch.randn(shape, generator=gen)  # Llama's norm multiplies by w itself
        elif name.endswith(".bias"):
            w = 0.3 * torch.randn(shape, generator=gen)
        elif name in ("model.embed_tokens.weight", "lm_head.weight"):
            w = 0.5 * torch.randn(shape, generator=gen)
        else:
            w = torch.randn(shape, generator=gen) / math.sqrt(shape[1]) * 1.5
        weights[name] = w
    return weights


# ---------------------------------------------------------------- reference model (HF semantics)

def rms_norm(x, w, eps):
    """LlamaRMSNorm: normalise in float32 (float64 here when x is), cast back, then times w."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf = x.to(acc)
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w * xf.to(x.dtype)


def inv_freq(c):
    """Transformers' rope init functions (default, linear, llama3), in float32 as they compute."""
    D, base = head_dim(c), c["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    rs = c.get("rope_scaling")
    kind = "default" if rs is None else rs.get("rope_type", rs.get("type"))
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / rs["factor"]
    assert kind == "llama3", kind
    factor, low, high, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, inv_l)


def rotary_cos_sin(c, positions, dtype):
    freqs = positions.float()[:, :, None] * inv_freq(c)[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def repeat_kv(x, n_rep):
    b, kv, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kv, n_rep, t, d).reshape(b, kv * n_rep, t, d)


def linear(x, W, name):
    y = x @ W[name + ".weight"].T
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    return y


def forward(W, c, tokens):
    """tokens: LongTensor [B, T], one causal document per row. Returns logits [B, T, V] in float32,
    or float64 when the weights are float64."""
    B, T = tokens.shape
    H, KV, D = c["num_attention_heads"], c["num_key_value_heads"], head_dim(c)
    embed = W["model.embed_tokens.weight"]
    dtype = embed.dtype
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    h = embed[tokens]
    positions = torch.arange(T)[None, :].expand(B, T)
    cos, sin = rotary_cos_sin(c, positions, dtype)
    cos, sin = cos[:, None], sin[:, None]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    eps = c["rms_norm_eps"]
    qk_norm = biases(c)[3]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        a = rms_norm(h, W[p + "input_layernorm.weight"], eps)
        q = linear(a, W, p + "self_attn.q_proj").view(B, T, H, D)
        k = linear(a, W, p + "self_attn.k_proj").view(B, T, KV, D)
        v = linear(a, W, p + "self_attn.v_proj").view(B, T, KV, D)
        if qk_norm:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = repeat_kv(k, H // KV), repeat_kv(v, H // KV)
        scores = (q @ k.transpose(2, 3)) * D ** -0.5
        scores = scores.to(acc).masked_fill(~causal, float("-inf"))
        probs = torch.softmax(scores, dim=-1).to(q.dtype)
        o = (probs @ v).transpose(1, 2).reshape(B, T, H * D)
        h = h + linear(o, W, p + "self_attn.o_proj")
        m = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(linear(m, W, p + "mlp.gate_proj"))
        h = h + linear(gate * linear(m, W, p + "mlp.up_proj"), W, p + "mlp.down_proj")
    h = rms_norm(h, W["model.norm.weight"], eps)
    head = embed if c["tie_word_embeddings"] else W["lm_head.weight"]
    return (h @ head.T).to(acc)


def grad_params(c):
    """Gradients checked: an attention and an MLP weight, two norms, and whatever the model type
    adds (biases, q/k norms; the embedding when it is also the head)."""
    names = ["model.layers.0.self_attn.k_proj.weight", "model.layers.0.input_layernorm.weight",
             "model.layers.1.mlp.up_proj.weight", "model.norm.weight"]
    shapes = param_shapes(c)
    for extra in ["model.layers.1.self_attn.q_proj.bias", "model.layers.1.self_attn.o_proj.bias",
                  "model.layers.0.mlp.down_proj.bias", "model.layers.1.self_attn.q_norm.weight",
                  "model.layers.0.self_attn.k_norm.weight"]:
        if extra in shapes:
            names.append(extra)
    if c["tie_word_embeddings"]:
        names.append("model.embed_tokens.weight")
    return names


def main():
    gc.seed()
    for index, (name, cfg, dtype, shards, alias) in enumerate(MODELS):
        cfg = dict(cfg, torch_dtype=gc.dtype_name(dtype))
        gen = torch.Generator().manual_seed(2000 + index)
        W = {k: v.to(dtype) for k, v in random_weights(cfg, gen).items()}
        folder = gc.write_folder(os.path.join(HERE, name), cfg, W, shards, alias)
        sequences = gc.random_sequences(gen, cfg["vocab_size"], (9, 20, 5), cfg["bos_token_id"])
        golden = gc.golden(lambda P, seq: forward(P, cfg, torch.tensor([seq]))[0], W, dtype, torch.float64,
                           sequences, grad_params(cfg), gc.flat)
        gc.write_json(os.path.join(folder, "golden.json"), golden, separators=(",", ":"))
        print(f"{name}: loss {golden['loss']['value']:.6f}, logits[0][:3] {golden['logits'][0][:3]}")


if __name__ == "__main__":
    main()
