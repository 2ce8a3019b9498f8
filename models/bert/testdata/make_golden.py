#!/usr/bin/python3
"""Reference for models/bert: a tiny random BERT checkpoint and its CLS embeddings.

Writes testdata/tiny/{config.json, vocab.txt, model.safetensors, golden.json}. Plain torch
(1.13) following Hugging Face's BertModel and BertTokenizer step by step; no transformers, no
safetensors package (the file is written by hand, by the writer the model families' scripts share:
models/internal/goldentest/golden_common.py).

golden.json holds, for each text: the WordPiece ids (BertTokenizer: clean text, CJK spacing,
lowercase + NFD accent stripping, punctuation split, greedy longest-match WordPiece, [CLS] ...
[SEP], truncated to max_length) and the L2-normalised CLS embedding of the last hidden state.
The script also runs all texts as one padded batch with an attention mask and checks the
embeddings equal the one-by-one ones, the property the Go encoder relies on.

Run: /usr/bin/python3 models/bert/testdata/make_golden.py
"""
import json
import math
import os
import sys
import unicodedata

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "internal", "goldentest"))
import golden_common as gc  # noqa: E402  (the safetensors writer the families' scripts share)
OUT = os.path.join(HERE, "tiny")

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "a", "is", "of", "and", "acme", "widget", "weigh", "kettle", "blue", "cafe", "creme",
         "coffee", "mamba", "gemma", "model", "un", "play", "state", "space", "日", "本", "語", "3", "kg",
         "water", "how", "much", "does", "it"]
SUFFIXES = ["##s", "##ing", "##able", "##ed", "##er", "##ly"]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?'\"()-/%&")
VOCAB = SPECIAL + WORDS + SUFFIXES + [c for c in CHARS if c not in WORDS] + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789" if "##" + c not in SUFFIXES]

CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": len(VOCAB),
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 24,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "torch_dtype": "float32",
}

TEXTS = [
    "How much does the Acme widget weigh?",
    "Café crème is coffee, not water!",
    "Unplayable states of space-models: Mamba & Gemma.",
    "日本語 text mixed with blue kettles",
    "zzzzqx unknownwordhere 3kg",
    "a",
    "The acme widget weighs 3 kg and the blue kettle is a model of water and coffee and state space models ok",
    "  tabs\tand\nnewlines\u00a0and\u200bzero width ",
    "snowman \u2603 costs 5\u20ac (ok) \u00c5ngstr\u00f6m",
]


# --- BertTokenizer -------------------------------------------------------------------------

def is_whitespace(ch):
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text):
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        out.append(" " if is_whitespace(ch) else ch)
    text = "".join(out)
    text = "".join(" " + ch + " " if is_cjk(ord(ch)) else ch for ch in text)
    tokens = []
    for tok in text.split():
        tok = tok.lower()
        tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = []
        for ch in tok:
            if is_punctuation(ch):
                if cur:
                    tokens.append("".join(cur))
                    cur = []
                tokens.append(ch)
            else:
                cur.append(ch)
        if cur:
            tokens.append("".join(cur))
    return tokens


def wordpiece(token, vocab):
    if len(token) > 100:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(token):
        end, found = len(token), None
        while start < end:
            sub = token[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                found = sub
                break
            end -= 1
        if found is None:
            return ["[UNK]"]
        pieces.append(found)
        start = end
    return pieces


def encode(text, vocab, max_length):
    pieces = [p for t in basic_tokenize(text) for p in wordpiece(t, vocab)]
    pieces = pieces[: max_length - 2]
    return [vocab["[CLS]"]] + [vocab[p] for p in pieces] + [vocab["[SEP]"]]


# --- BertModel -------------------------------------------------------------------------------

def make_weights(cfg, gen):
    H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    w = {}

    def rnd(*shape, std=0.2):
        return torch.randn(*shape, generator=gen) * std

    w["embeddings.word_embeddings.weight"] = rnd(cfg["vocab_size"], H, std=0.5)
    w["embeddings.position_embeddings.weight"] = rnd(cfg["max_position_embeddings"], H, std=0.5)
    w["embeddings.token_type_embeddings.weight"] = rnd(cfg["type_vocab_size"], H, std=0.5)
    w["embeddings.LayerNorm.weight"] = 1 + rnd(H, std=0.1)
    w["embeddings.LayerNorm.bias"] = rnd(H, std=0.1)
    for l in range(L):
        p = f"encoder.layer.{l}."
        for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]:
            w[p + name + ".weight"] = rnd(H, H)
            w[p + name + ".bias"] = rnd(H, std=0.1)
        w[p + "attention.output.LayerNorm.weight"] = 1 + rnd(H, std=0.1)
        w[p + "attention.output.LayerNorm.bias"] = rnd(H, std=0.1)
        w[p + "intermediate.dense.weight"] = rnd(I, H)
        w[p + "intermediate.dense.bias"] = rnd(I, std=0.1)
        w[p + "output.dense.weight"] = rnd(H, I)
        w[p + "output.dense.bias"] = rnd(H, std=0.1)
        w[p + "output.LayerNorm.weight"] = 1 + rnd(H, std=0.1)
        w[p + "output.LayerNorm.bias"] = rnd(H, std=0.1)
    # The pooler is in BertModel checkpoints but unused by CLS pooling of the last hidden state.
    w["pooler.dense.weight"] = rnd(H, H)
    w["pooler.dense.bias"] = rnd(H, std=0.1)
    return w


def bert_forward(cfg, w, ids, mask):
    """ids, mask: [B, T] long. Returns last hidden state [B, T, H] (float64 for the reference)."""
    H, nh, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    dh = H // nh
    B, T = ids.shape
    W = {k: v.double() for k, v in w.items()}
    lin = lambda x, name: x @ W[name + ".weight"].T + W[name + ".bias"]
    ln = lambda x, name: torch.nn.functional.layer_norm(x, (H,), W[name + ".weight"], W[name + ".bias"], eps)
    x = (W["embeddings.word_embeddings.weight"][ids]
         + W["embeddings.position_embeddings.weight"][torch.arange(T)][None]
         + W["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)])
    x = ln(x, "embeddings.LayerNorm")
    ext = (1.0 - mask[:, None, None, :].double()) * torch.finfo(torch.float32).min
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        heads = lambda t: t.view(B, T, nh, dh).permute(0, 2, 1, 3)
        q, k, v = (heads(lin(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + ext
        ctx = (torch.softmax(scores, dim=-1) @ v).permute(0, 2, 1, 3).reshape(B, T, H)
        a = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        inter = lin(a, p + "intermediate.dense")
        inter = 0.5 * inter * (1.0 + torch.erf(inter / math.sqrt(2.0)))
        x = ln(lin(inter, p + "output.dense") + a, p + "output.LayerNorm")
    return x


def cls_embedding(hidden):
    cls = hidden[:, 0]
    return cls / cls.norm(dim=-1, keepdim=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(20241123)
    w = make_weights(CONFIG, gen)
    vocab = {t: i for i, t in enumerate(VOCAB)}
    assert len(vocab) == len(VOCAB), "duplicate vocab entries"
    max_len = CONFIG["max_position_embeddings"]

    seqs = [encode(t, vocab, max_len) for t in TEXTS]
    embs = [cls_embedding(bert_forward(CONFIG, w, torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)))[0] for s in seqs]

    # Padded batch: must equal the one-by-one embeddings.
    T = max(len(s) for s in seqs)
    ids = torch.tensor([s + [0] * (T - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in seqs])
    batch = cls_embedding(bert_forward(CONFIG, w, ids, mask))
    for i, e in enumerate(embs):
        assert torch.allclose(batch[i], e, atol=1e-9), f"padding changed text {i}"

    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    with open(os.path.join(OUT, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    gc.write_safetensors(os.path.join(OUT, "model.safetensors"), {k: v.float() for k, v in w.items()})
    golden = {"max_length": max_len, "cases": [
        {"text": t, "tokens": [VOCAB[i] for i in s], "ids": s, "embedding": e.tolist()}
        for t, s, e in zip(TEXTS, seqs, embs)]}
    with open(os.path.join(OUT, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
