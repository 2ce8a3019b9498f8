"""What the model families' golden-fixture scripts share (models/*/testdata/make_golden*.py).

The parts of writing a fixture folder that are the same in every family: the safetensors writer
(written by hand, so no `safetensors` or `transformers` package is needed: 8-byte little-endian
header length, JSON header padded with spaces to 8 bytes, raw little-endian data), float32 and
bfloat16 tensor bytes, sharded checkpoints with a tied-head alias, JSON output, seeding, and the
harness that computes golden.json (logits of each sequence run alone, bf16 logits, and the masked
cross-entropy with its autograd gradients; the format models/lm/lmtest reads as lmtest.Golden).

No model code lives here: each script keeps its own independent reference forward pass and hands
it to these helpers as a function, so a family's reference still depends neither on the Go code
nor on another family's reference. Go reads what this writes with models/internal/goldentest
(goldentest.go, next to this file).

A script in models/<family>/testdata imports it with

    sys.path.insert(0, os.path.join(HERE, "..", "..", "internal", "goldentest"))
    import golden_common as gc

Everything is deterministic: rerunning a script rewrites identical files (on the same machine:
float32 matmuls may round differently on other CPUs or BLAS builds).
"""
import json
import os
import struct

import numpy as np
import torch

# safetensors dtype names of the torch dtypes a fixture stores.
ST_DTYPE = {torch.float32: "F32", torch.bfloat16: "BF16"}
# and back: the torch dtype of a safetensors dtype name.
TORCH_DTYPE = {name: dtype for dtype, name in ST_DTYPE.items()}


def seed(n=0):
    """Seeds torch's and numpy's global generators. The scripts draw from explicit
    torch.Generators; the global seeds only keep a stray unseeded draw reproducible."""
    torch.manual_seed(n)
    np.random.seed(n)


def dtype_name(dtype):
    """config.json's torch_dtype for the torch dtype weights are stored in."""
    return "bfloat16" if dtype == torch.bfloat16 else "float32"


def tensor_bytes(t):
    """The raw little-endian data of a float32 or bfloat16 tensor (bfloat16 as its 16 bits)."""
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype("<f4").tobytes()


def write_safetensors(path, tensors, sort_names=True):
    """Writes tensors (name -> float32 or bfloat16 tensor) as one safetensors file, by name
    (sort_names) or in the mapping's order; returns the size of the data."""
    header, blobs, offset = {}, [], 0
    for name in (sorted(tensors) if sort_names else tensors):
        data = tensor_bytes(tensors[name])
        header[name] = {"dtype": ST_DTYPE[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format allows padding the header with spaces to align data
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    return offset


def write_checkpoint(folder, W, shards, alias):
    """Writes the weights W into folder as model.safetensors, or, for shards > 1, as that many
    model-0000i-of-0000n.safetensors files (names sorted, dealt round-robin) with
    model.safetensors.index.json. alias also stores the embedding as lm_head.weight (a tied head
    saved as some checkpoints have it)."""
    tensors = dict(W)
    if alias:
        tensors["lm_head.weight"] = W["model.embed_tokens.weight"]
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
        return
    names = sorted(tensors)
    weight_map, total = {}, 0
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[i::shards]}
        total += write_safetensors(os.path.join(folder, fname), part)
        weight_map.update({n: fname for n in part})
    write_json(os.path.join(folder, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1, sort_keys=True)


def write_json(path, obj, **dump_options):
    """Writes obj to path with json.dump(obj, f, **dump_options)."""
    with open(path, "w") as f:
        json.dump(obj, f, **dump_options)


def fresh_folder(folder):
    """Creates folder, or empties it of the files an earlier run wrote; returns it."""
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        os.remove(os.path.join(folder, old))
    return folder


def write_folder(folder, cfg, W, shards, alias):
    """Makes folder a fresh model folder (fresh_folder): config.json holding cfg, and the weights
    W as write_checkpoint writes them. Returns folder."""
    fresh_folder(folder)
    write_json(os.path.join(folder, "config.json"), cfg, indent=1)
    write_checkpoint(folder, W, shards, alias)
    return folder


def flat(t):
    """Values flattened, rounded to 8 significant digits (JSON then writes at most 8)."""
    return [float(f"{x:.8g}") for x in t.detach().double().reshape(-1).tolist()]


def flat_f32(t):
    """Values flattened as float32, unrounded."""
    return [float(x) for x in t.detach().float().reshape(-1).tolist()]


def random_sequences(gen, vocab, lengths, bos):
    """Token sequences of the given lengths drawn from gen, avoiding ids 0-2 (special tokens), the
    first one starting with bos."""
    sequences = [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in lengths]
    sequences[0][0] = bos
    return sequences


def golden_loss(logits_of, W, tokens, targets, weights, grad_names, flat):
    """golden.json's "loss": the masked mean next-token cross-entropy
    -sum_t weights[t] * log_softmax(logits)[t, targets[t]] / sum_t weights[t] of one row, and its
    autograd gradients with respect to the weights named by grad_names (flattened by flat).
    logits_of(W, tokens) is the reference: [T, V] logits of one sequence (a list of ids), in the
    dtype of W, which the loss is computed in."""
    P = {k: v.detach().clone().requires_grad_(True) for k, v in W.items()}
    logits = logits_of(P, tokens)
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp[torch.arange(len(tokens)), torch.tensor(targets)]
    w = torch.tensor(weights, dtype=logits.dtype)
    loss = (nll * w).sum() / w.sum()
    loss.backward()
    return {"tokens": tokens, "targets": targets, "weights": weights, "value": float(loss),
            "grads": {n: flat(P[n].grad) for n in grad_names}}


def golden(logits_of, W, dtype, reference_dtype, sequences, grad_names, flat):
    """golden.json for weights W stored in dtype: "logits" of each sequence run alone with the
    weights widened to reference_dtype (float64 gives the exact values a float32 implementation
    approximates), "logits_bf16" computed in bfloat16 when dtype is bfloat16, and the "loss" of
    sequences[1] (next tokens, its first 4 positions not counted) with gradients for grad_names.
    logits_of(W, tokens) is the family's reference: [T, V] logits of one sequence."""
    Wr = {k: v.to(reference_dtype) for k, v in W.items()}
    out = {"sequences": sequences, "logits": [], "weights_dtype": dtype_name(dtype)}
    with torch.no_grad():
        for seq in sequences:
            out["logits"].append(flat(logits_of(Wr, seq)))
        if dtype == torch.bfloat16:
            out["logits_bf16"] = [flat(logits_of(W, seq)) for seq in sequences]
    seq = sequences[1]
    tokens, targets = seq[:-1], seq[1:]
    weights = [0.0] * 4 + [1.0] * (len(tokens) - 4)
    out["loss"] = golden_loss(logits_of, Wr, tokens, targets, weights, grad_names, flat)
    return out
