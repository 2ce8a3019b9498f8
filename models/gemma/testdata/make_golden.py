#!/usr/bin/python3
"""Golden fixtures for models/gemma: tiny random Gemma v1 checkpoints and reference outputs.

An independent plain-PyTorch re-implementation of Hugging Face's GemmaForCausalLM forward pass
(modeling_gemma: scaled embeddings, float32 RMSNorm with (1 + w), rotate_half RoPE, repeat_kv
GQA/MQA, float32 softmax, GeGLU with tanh GELU, final norm, tied head, float32 logits). No
`transformers` or `safetensors` package is needed: checkpoints are written by hand in the
safetensors format by models/internal/goldentest/golden_common.py, the writer and golden.json
harness (logits, loss, autograd gradients of this script's forward) the families' scripts share.

Each model folder gets config.json, model.safetensors (or shards + model.safetensors.index.json)
and golden.json with:
  sequences: token ids (one list per sequence, different lengths)
  logits:    per sequence, float32 logits [T, V] flattened, each sequence run alone (batch 1)
  logits_bf16 (bf16 models only): the same computed in bfloat16 (weights and activations)
  loss:      for a training-style loss (mean cross-entropy over chosen positions): tokens, targets,
             weights (1 = counted), the loss value and gradients w.r.t. a few parameters.

Run from anywhere: /usr/bin/python3 models/gemma/testdata/make_golden.py
"""
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "internal", "goldentest"))
import golden_common as gc  # noqa: E402  (safetensors writer, golden.json harness)

# name, config overrides, weight dtype, number of shards, write lm_head.weight alias
MODELS = [
    ("mha", dict(num_attention_heads=4, num_key_value_heads=4, head_dim=8), torch.float32, 1, False),
    ("mqa", dict(num_attention_heads=4, num_key_value_heads=1, head_dim=8), torch.float32, 1, True),
    # head_dim 12 != hidden/heads (8) and an odd half (6): catches layout assumptions.
    ("gqa_sharded", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=12), torch.float32, 2, False),
    ("gqa_bf16", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=12), torch.bfloat16, 1, False),
]

BASE_CONFIG = {
    "architectures": ["GemmaForCausalLM"],
    "model_type": "gemma",
    "vocab_size": 67,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "head_dim": 8,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "max_position_embeddings": 64,
    "hidden_act": "gelu",
    "hidden_activation": None,
    "attention_bias": False,
    "rope_scaling": None,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "pad_token_id": 0,
    "tie_word_embeddings": True,
}

# the parameters golden.json has gradients for
GRAD_PARAMS = [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.1.mlp.down_proj.weight",
    "model.norm.weight",
]


def param_shapes(c):
    H, KV, D, h, I = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["hidden_size"], c["intermediate_size"]
    shapes = {"model.embed_tokens.weight": (c["vocab_size"], h)}
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = (h,)
        shapes[p + "self_attn.q_proj.weight"] = (H * D, h)
        shapes[p + "self_attn.k_proj.weight"] = (KV * D, h)
        shapes[p + "self_attn.v_proj.weight"] = (KV * D, h)
        shapes[p + "self_attn.o_proj.weight"] = (h, H * D)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
        shapes[p + "mlp.gate_proj.weight"] = (I, h)
        shapes[p + "mlp.up_proj.weight"] = (I, h)
        shapes[p + "mlp.down_proj.weight"] = (h, I)
    shapes["model.norm.weight"] = (h,)
    return shapes


def random_weights(c, gen):
    """Weights large enough that logits are far from uniform (std 0.02 would make every test pass)."""
    weights = {}
    for name, shape in param_shapes(c).items():
        if name.endswith("norm.weight"):
            w = 0.3 * torch.randn(shape, generator=gen)
        elif name == "model.embed_tokens.weight":
            w = 0.5 * torch.randn(shape, generator=gen)
        else:
            w = torch.randn(shape, generator=gen) / math.sqrt(shape[1]) * 1.5
        weights[name] = w
    return weights


# ---------------------------------------------------------------- reference model (HF semantics)

def rms_norm(x, w, eps):
    xf = x.float()
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    out = out * (1.0 + w.float())
    return out.type_as(x)


def rotary_cos_sin(positions, dim, theta, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    freqs = positions.float()[:, :, None] * inv_freq[None, None, :]
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


def forward(W, c, tokens):
    """tokens: LongTensor [B, T], one causal document per row. Returns float32 logits [B, T, V]."""
    B, T = tokens.shape
    H, KV, D = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    embed = W["model.embed_tokens.weight"]
    dtype = embed.dtype
    h = embed[tokens]
    h = h * torch.tensor(c["hidden_size"] ** 0.5, dtype=dtype)
    positions = torch.arange(T)[None, :].expand(B, T)
    cos, sin = rotary_cos_sin(positions, D, c["rope_theta"], dtype)
    cos, sin = cos[:, None], sin[:, None]
    mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)
    eps = c["rms_norm_eps"]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        a = rms_norm(h, W[p + "input_layernorm.weight"], eps)
        q = (a @ W[p + "self_attn.q_proj.weight"].T).view(B, T, H, D).transpose(1, 2)
        k = (a @ W[p + "self_attn.k_proj.weight"].T).view(B, T, KV, D).transpose(1, 2)
        v = (a @ W[p + "self_attn.v_proj.weight"].T).view(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = repeat_kv(k, H // KV), repeat_kv(v, H // KV)
        scores = (q @ k.transpose(2, 3)) / math.sqrt(D)
        scores = scores.float() + mask
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        o = (probs @ v).transpose(1, 2).reshape(B, T, H * D)
        h = h + o @ W[p + "self_attn.o_proj.weight"].T
        m = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.gelu(m @ W[p + "mlp.gate_proj.weight"].T, approximate="tanh")
        up = m @ W[p + "mlp.up_proj.weight"].T
        h = h + (gate * up) @ W[p + "mlp.down_proj.weight"].T
    h = rms_norm(h, W["model.norm.weight"], eps)
    return (h @ embed.T).float()


def main():
    gc.seed()
    for index, (name, overrides, dtype, shards, alias) in enumerate(MODELS):
        cfg = dict(BASE_CONFIG, **overrides, torch_dtype=gc.dtype_name(dtype))
        gen = torch.Generator().manual_seed(1000 + index)
        W = {k: v.to(dtype) for k, v in random_weights(cfg, gen).items()}
        folder = gc.write_folder(os.path.join(HERE, name), cfg, W, shards, alias)
        sequences = gc.random_sequences(gen, cfg["vocab_size"], (9, 14, 5), cfg["bos_token_id"])
        golden = gc.golden(lambda P, seq: forward(P, cfg, torch.tensor([seq]))[0], W, dtype, torch.float32,
                           sequences, GRAD_PARAMS, gc.flat_f32)
        gc.write_json(os.path.join(folder, "golden.json"), golden)
        print(f"{name}: loss {golden['loss']['value']:.6f}, logits[0][:3] {golden['logits'][0][:3]}")


if __name__ == "__main__":
    main()
