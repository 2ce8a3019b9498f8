#!/usr/bin/python3
"""Golden fixtures for Gemma 2 and Gemma 3 text in models/gemma: tiny random checkpoints and reference outputs.

An independent plain-PyTorch re-implementation of Hugging Face's Gemma2ForCausalLM
(modeling_gemma2) and Gemma3ForCausalLM (modeling_gemma3, text only) forward passes:
embeddings scaled by sqrt(hidden) cast to the weights' dtype; RMSNorm in float32 with (1 + w),
cast back; four norms per layer (input, post-attention, pre- and post-feed-forward); Gemma 3's
per-head q_norm/k_norm before RoPE; rotate_half RoPE (Gemma 3: rope_local_base_freq on sliding
layers, rope_theta with linear rope_scaling on global ones); scores scaled by
query_pre_attn_scalar**-0.5 and soft-capped (attn_logit_softcapping, Gemma 2 only); causal mask,
and on sliding layers only keys with index > query index - sliding_window; float32 softmax;
GeGLU with tanh GELU; tied head; final_logit_softcapping. Which layers slide: layer_types if
given, else Gemma 2's even layers, else Gemma 3's sliding_window_pattern (every pattern-th layer
global). Absent fields take Gemma2Config's / Gemma3TextConfig's defaults (Gemma 2: soft caps 50
and 30; Gemma 3: none).

No `transformers` or `safetensors` package is needed: checkpoints are written by hand in the
safetensors format by models/internal/goldentest/golden_common.py, the writer and golden.json
harness (logits, loss, autograd gradients of this script's forward) the families' scripts share.
The float32 references are computed in float64 from the stored weights (a bf16 checkpoint's
weights widened exactly), so they are the exact values a float32 implementation approximates.

Each model folder gets config.json, model.safetensors (or shards + model.safetensors.index.json)
and golden.json (the format models/lm/lmtest reads) with:
  sequences: token ids (one list per sequence, different lengths; two are longer than the window)
  logits:    per sequence, logits [T, V] flattened, each sequence run alone (batch 1)
  logits_bf16 (bf16 models only): the same computed in bfloat16 (weights and activations), with
             Transformers' casts (float32 norms, rope tables and softmax, cast back to bf16)
  loss:      for a training-style loss (mean cross-entropy over chosen positions): tokens, targets,
             weights (1 = counted), the loss value and gradients w.r.t. a few parameters.

Numbers are written with 8 significant digits to keep the fixtures small. The script is
deterministic: rerunning it rewrites identical files.

Run from anywhere: /usr/bin/python3 models/gemma/testdata/make_golden2.py
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
    "intermediate_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "max_position_embeddings": 128,
    "hidden_activation": "gelu_pytorch_tanh",
    "rms_norm_eps": 1e-6,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "pad_token_id": 0,
    "initializer_range": 0.02,
    "tie_word_embeddings": True,
    "use_cache": True,
    "cache_implementation": "hybrid",
}

# name, config, weight dtype, number of shards, write an lm_head.weight alias of the embedding
MODELS = [
    # Gemma 2: layers 0 and 2 slide (window 4), layer 1 is global; soft caps small enough to bend
    # the scores and logits of these weights; query_pre_attn_scalar 12 != head_dim; two shards.
    ("gemma2_sharded", dict(BASE, architectures=["Gemma2ForCausalLM"], model_type="gemma2",
                            hidden_act="gelu_pytorch_tanh", rope_theta=10000.0, query_pre_attn_scalar=12,
                            sliding_window=4, attn_logit_softcapping=2.0, final_logit_softcapping=5.0),
     torch.float32, 2, False),
    # Gemma 2 in bf16, multi-query, the soft caps absent (Gemma2Config's 50 and 30 apply), the
    # tied head also stored as lm_head.weight.
    ("gemma2_bf16", dict(BASE, architectures=["Gemma2ForCausalLM"], model_type="gemma2",
                         num_key_value_heads=1, rope_theta=10000.0, query_pre_attn_scalar=8,
                         sliding_window=5), torch.bfloat16, 1, True),
    # Gemma 3 text: q/k norms; sliding_window_pattern 3 (layers 0, 1 slide, 2 is global); local
    # RoPE base 10 against global rope_theta 1000 with linear scaling; no soft caps.
    ("gemma3_pattern", dict(BASE, architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
                            rope_theta=1000.0, rope_local_base_freq=10.0,
                            rope_scaling={"rope_type": "linear", "factor": 4.0}, query_pre_attn_scalar=8,
                            sliding_window=6, sliding_window_pattern=3, attn_logit_softcapping=None,
                            final_logit_softcapping=None), torch.float32, 1, False),
    # Gemma 3 text with layer_types (global, sliding, global), which wins over the
    # sliding_window_pattern also present (6 would make every layer slide); a final soft cap.
    ("gemma3_layer_types", dict(BASE, architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
                                rope_theta=10000.0, rope_local_base_freq=100.0, rope_scaling=None,
                                query_pre_attn_scalar=16, sliding_window=3, sliding_window_pattern=6,
                                layer_types=["full_attention", "sliding_attention", "full_attention"],
                                attn_logit_softcapping=None, final_logit_softcapping=6.0),
     torch.float32, 1, False),
]


def defaults(c):
    """Gemma2Config / Gemma3TextConfig defaults for the fields a fixture may omit."""
    if c["model_type"] == "gemma2":
        return {"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "query_pre_attn_scalar": 256,
                "sliding_window": 4096, "rope_theta": 10000.0}
    return {"attn_logit_softcapping": None, "final_logit_softcapping": None, "query_pre_attn_scalar": 256,
            "sliding_window": 4096, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
            "sliding_window_pattern": 6, "rope_scaling": None}


def get(c, key):
    return c[key] if key in c else defaults(c)[key]


def sliding_layers(c):
    n = c["num_hidden_layers"]
    if c.get("layer_types") is not None:
        return [t == "sliding_attention" for t in c["layer_types"]]
    if c["model_type"] == "gemma2":
        return [not bool(i % 2) for i in range(n)]  # Gemma2Attention: is_sliding = not bool(layer_idx % 2)
    pattern = get(c, "sliding_window_pattern")
    return [bool((i + 1) % pattern) for i in range(n)]


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
        if c["model_type"] == "gemma3_text":
            shapes[p + "self_attn.q_norm.weight"] = (D,)
            shapes[p + "self_attn.k_norm.weight"] = (D,)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
        shapes[p + "pre_feedforward_layernorm.weight"] = (h,)
        shapes[p + "post_feedforward_layernorm.weight"] = (h,)
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
            w = 0.3 * torch.randn(shape, generator=gen)  # Gemma's norms multiply by 1 + w
        elif name == "model.embed_tokens.weight":
            w = 0.5 * torch.randn(shape, generator=gen)
        else:
            w = torch.randn(shape, generator=gen) / math.sqrt(shape[1]) * 1.5
        weights[name] = w
    return weights


# ---------------------------------------------------------------- reference model (HF semantics)

def rms_norm(x, w, eps):
    """Gemma2RMSNorm / Gemma3RMSNorm: float32 (float64 here when x is), times 1 + w, cast back."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf = x.to(acc)
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (out * (1.0 + w.to(acc))).to(x.dtype)


def inv_freq(D, base, scaling):
    """Transformers' default rope init in float32, divided by factor for linear scaling."""
    inv = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    if scaling is not None and scaling.get("rope_type", scaling.get("type")) == "linear":
        inv = inv / scaling["factor"]
    return inv


def cos_sin(inv, positions, dtype):
    freqs = positions.float()[:, :, None] * inv[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]  # [B, 1, T, D]


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def repeat_kv(x, n_rep):
    b, kv, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kv, n_rep, t, d).reshape(b, kv * n_rep, t, d)


def gelu_tanh(x):
    return torch.nn.functional.gelu(x, approximate="tanh")


def forward(W, c, tokens):
    """tokens: LongTensor [B, T], one causal document per row. Returns logits [B, T, V] in float32,
    or float64 when the weights are float64."""
    B, T = tokens.shape
    H, KV, D = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    gemma3 = c["model_type"] == "gemma3_text"
    embed = W["model.embed_tokens.weight"]
    dtype = embed.dtype
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    eps = c["rms_norm_eps"]
    if gemma3:  # Gemma3TextScaledWordEmbedding: a float32 buffer cast to the weights' dtype
        normalizer = torch.tensor(c["hidden_size"] ** 0.5).to(dtype)
    else:  # Gemma2Model: torch.tensor(hidden_size**0.5, dtype=hidden_states.dtype)
        normalizer = torch.tensor(c["hidden_size"] ** 0.5, dtype=dtype)
    h = embed[tokens] * normalizer

    positions = torch.arange(T)[None, :].expand(B, T)
    global_rope = cos_sin(inv_freq(D, get(c, "rope_theta"), get(c, "rope_scaling") if gemma3 else None), positions, dtype)
    local_rope = cos_sin(inv_freq(D, get(c, "rope_local_base_freq"), None), positions, dtype) if gemma3 else global_rope
    q_idx, k_idx = torch.arange(T)[:, None], torch.arange(T)[None, :]
    causal = k_idx <= q_idx
    window = get(c, "sliding_window")
    local_mask = causal & (k_idx > q_idx - window)
    scaling = get(c, "query_pre_attn_scalar") ** -0.5
    attn_cap = get(c, "attn_logit_softcapping") if not gemma3 else None  # Gemma3Attention never passes it
    final_cap = get(c, "final_logit_softcapping")

    for l, sliding in enumerate(sliding_layers(c)):
        p = f"model.layers.{l}."
        cos, sin = local_rope if sliding else global_rope
        mask = local_mask if sliding else causal
        residual = h
        a = rms_norm(h, W[p + "input_layernorm.weight"], eps)
        q = (a @ W[p + "self_attn.q_proj.weight"].T).view(B, T, H, D).transpose(1, 2)
        k = (a @ W[p + "self_attn.k_proj.weight"].T).view(B, T, KV, D).transpose(1, 2)
        v = (a @ W[p + "self_attn.v_proj.weight"].T).view(B, T, KV, D).transpose(1, 2)
        if gemma3:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = repeat_kv(k, H // KV), repeat_kv(v, H // KV)
        scores = (q @ k.transpose(2, 3)) * scaling
        if attn_cap is not None:
            scores = torch.tanh(scores / attn_cap) * attn_cap
        scores = scores.to(acc).masked_fill(~mask, float("-inf"))
        probs = torch.softmax(scores, dim=-1).to(q.dtype)
        o = (probs @ v).transpose(1, 2).reshape(B, T, H * D) @ W[p + "self_attn.o_proj.weight"].T
        h = residual + rms_norm(o, W[p + "post_attention_layernorm.weight"], eps)
        residual = h
        m = rms_norm(h, W[p + "pre_feedforward_layernorm.weight"], eps)
        mlp = (gelu_tanh(m @ W[p + "mlp.gate_proj.weight"].T) * (m @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
        h = residual + rms_norm(mlp, W[p + "post_feedforward_layernorm.weight"], eps)
    h = rms_norm(h, W["model.norm.weight"], eps)
    logits = h @ embed.T
    if final_cap is not None:
        logits = torch.tanh(logits / final_cap) * final_cap
    return logits.to(acc)


def grad_params(c):
    """Gradients checked: the tied embedding, attention and MLP weights of a sliding and a global
    layer, the four layer norms, and Gemma 3's q/k norms."""
    names = ["model.embed_tokens.weight", "model.layers.0.self_attn.k_proj.weight",
             "model.layers.0.post_feedforward_layernorm.weight", "model.layers.1.self_attn.v_proj.weight",
             "model.layers.1.post_attention_layernorm.weight", "model.layers.1.pre_feedforward_layernorm.weight",
             "model.layers.2.input_layernorm.weight", "model.layers.2.mlp.up_proj.weight", "model.norm.weight"]
    if c["model_type"] == "gemma3_text":
        names += ["model.layers.0.self_attn.q_norm.weight", "model.layers.2.self_attn.k_norm.weight"]
    return names


def main():
    gc.seed()
    for index, (name, cfg, dtype, shards, alias) in enumerate(MODELS):
        cfg = dict(cfg, torch_dtype=gc.dtype_name(dtype))
        gen = torch.Generator().manual_seed(3000 + index)
        W = {k: v.to(dtype) for k, v in random_weights(cfg, gen).items()}
        folder = gc.write_folder(os.path.join(HERE, name), cfg, W, shards, alias)
        sequences = gc.random_sequences(gen, cfg["vocab_size"], (9, 20, 5), cfg["bos_token_id"])
        golden = gc.golden(lambda P, seq: forward(P, cfg, torch.tensor([seq]))[0], W, dtype, torch.float64,
                           sequences, grad_params(cfg), gc.flat)
        gc.write_json(os.path.join(folder, "golden.json"), golden, separators=(",", ":"))
        print(f"{name}: sliding {sliding_layers(cfg)}, loss {golden['loss']['value']:.6f}, logits[0][:3] {golden['logits'][0][:3]}")


if __name__ == "__main__":
    main()
