#!/usr/bin/python3
"""Independent reference for the evaluator (package evaluation) on a tiny Gemma checkpoint.

It re-implements, in plain Python, lm-evaluation-harness's multiple_choice scoring as documented
(HFLM._encode_pair, _loglikelihood_tokens, process_results) and runs the model with the plain-torch
Gemma forward pass of models/gemma/testdata/make_golden.py on the checkpoint
models/gemma/testdata/mha. Writes, next to this script:

  tiny_vocab.json        the toy tokenizer: greedy longest match over these pieces (ids from 3;
                         id 3 is <unk>, one per unknown character); BOS = 2, prepended (Gemma)
  tiny_questions.jsonl   300 seeded questions (curriculum.Question records)
  tiny_reference.json    per formulation, per question: log-likelihoods, is_greedy, continuation
                         token counts, truncated tokens, prediction, acc, acc_norm, acc_bytes

Run from the repository root: /usr/bin/python3 evaluation/testdata/reference.py
"""
import json
import os
import random
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL = os.path.join(ROOT, "models", "gemma", "testdata", "mha")
sys.path.insert(0, os.path.join(ROOT, "models", "gemma", "testdata"))
from make_golden import forward  # noqa: E402  (the plain-torch Gemma forward pass)

BOS = 2
UNK = 3
PIECES = ([" ", "\n", ".", ":", "?", ",", "A", "B", "C", "D", " A", " B", " C", " D",
           "Answer", "Question", "the", " the", "er", "in", "on", "an", "re", "is", " is", "What", " of"]
          + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)])

TEMPLATES = {
    # (prompt template, choices: None = the question's own choices)
    "letters": ("{question}\nA. {c0}\nB. {c1}\nC. {c2}\nD. {c3}\nAnswer:", ["A", "B", "C", "D"]),
    "cloze": ("Question: {question}\nAnswer:", None),
}
DELIM = " "


def encode(text):
    """Greedy longest match; unknown characters become <unk>."""
    ids, i = [], 0
    while i < len(text):
        best = -1
        for j, p in enumerate(PIECES):
            if text.startswith(p, i) and (best < 0 or len(p) > len(PIECES[best])):
                best = j
        if best < 0:
            ids.append(UNK)
            i += 1
        else:
            ids.append(best + 4)
            i += len(PIECES[best])
    return ids


def tok_encode(text):
    return [BOS] + encode(text)


def encode_pair(context, continuation):
    # HFLM._encode_pair: trailing whitespace of the context moves to the continuation.
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok_encode(context + continuation)
    ctx = tok_encode(context)
    return ctx, whole[len(ctx):]


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", e["dtype"]
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").copy().reshape(e["shape"]))
    return out


WORDS = ["cat", "dog", "sun", "red", "big", "box", "cup", "map", "ink", "owl", "zip", "jam",
         "the", "on", "in", "is", "an", "of", "re", "er", "go", "up", "ox", "by", "we", "at",
         "42", "7", "2024", "café", "naïve", "Zed", "Kip", "Mo"]


def make_questions(rnd, n):
    qs = []
    for i in range(n):
        q = "What " + " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 4))) + "?"
        choices = []
        while len(choices) < 4:
            c = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 3)))
            if c not in choices:
                choices.append(c)
        # Every tenth question ends its prompt in spaces, exercising the whitespace move.
        if i % 10 == 3:
            q += "  "
        qs.append({"id": f"tiny/q{i:04d}", "question": q, "choices": choices, "answer": rnd.randrange(4),
                   "kind": ["seen", "document_only"][i % 2], "chunk_id": f"tiny/doc{i // 3:04d}"})
    return qs


def main():
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    assert cfg["vocab_size"] >= len(PIECES) + 4
    max_len = cfg["max_position_embeddings"]
    W = read_safetensors(os.path.join(MODEL, "model.safetensors"))
    rnd = random.Random(6)
    qs = make_questions(rnd, 300)
    with open(os.path.join(HERE, "tiny_vocab.json"), "w") as f:
        json.dump({"bos": BOS, "unk": UNK, "first_piece_id": 4, "pieces": PIECES}, f, indent=1)
        f.write("\n")
    with open(os.path.join(HERE, "tiny_questions.jsonl"), "w") as f:
        for q in qs:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")

    memo = {}

    def loglik(ctx, cont):
        # _loglikelihood_tokens: keep the last max_len+1 tokens, feed all but the last.
        full = (ctx + cont)[-(max_len + 1):]
        inp = full[:-1]
        key = tuple(inp)
        if key not in memo:
            with torch.no_grad():
                logits = forward(W, cfg, torch.tensor([inp], dtype=torch.long))[0]
            memo[key] = torch.log_softmax(logits.double(), dim=-1)
        lp = memo[key][len(inp) - len(cont):]
        tgt = torch.tensor(cont)
        greedy = bool((lp.argmax(dim=-1) == tgt).all())
        return float(lp[torch.arange(len(cont)), tgt].sum()), greedy, max(0, len(ctx) + len(cont) - (max_len + 1))

    out = {"model": "models/gemma/testdata/mha", "max_length": max_len, "formulations": {}}
    for form, (tmpl, fixed) in TEMPLATES.items():
        rows = []
        for q in qs:
            prompt = tmpl.replace("{question}", q["question"])
            for k, c in enumerate(q["choices"]):
                prompt = prompt.replace("{c%d}" % k, c)
            choices = fixed if fixed is not None else q["choices"]
            lls, greedy, ntok, trunc = [], [], [], 0
            for c in choices:
                ctx, cont = encode_pair(prompt, DELIM + c)
                ll, g, t = loglik(ctx, cont)
                lls.append(ll)
                greedy.append(g)
                ntok.append(len(cont))
                trunc = max(trunc, t)
            lls_a = np.array(lls)
            gold = q["answer"]
            pred = int(np.argmax(lls_a))
            pred_norm = int(np.argmax(lls_a / np.array([float(len(c)) for c in choices])))
            pred_bytes = int(np.argmax(lls_a / np.array([float(len(c.encode("utf-8"))) for c in choices])))
            rows.append({"id": q["id"], "loglikelihoods": lls, "is_greedy": greedy, "continuation_tokens": ntok,
                         "truncated_tokens": trunc, "prediction": pred,
                         "acc": float(pred == gold), "acc_norm": float(pred_norm == gold),
                         "acc_bytes": float(pred_bytes == gold)})
        n = len(rows)
        out["formulations"][form] = {
            "acc": sum(r["acc"] for r in rows) / n,
            "acc_norm": sum(r["acc_norm"] for r in rows) / n,
            "acc_bytes": sum(r["acc_bytes"] for r in rows) / n,
            "questions_truncated": sum(1 for r in rows if r["truncated_tokens"] > 0),
            "samples": rows,
        }
    with open(os.path.join(HERE, "tiny_reference.json"), "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")
    for form, r in out["formulations"].items():
        print(form, "acc", r["acc"], "acc_norm", r["acc_norm"], "acc_bytes", r["acc_bytes"],
              "truncated", r["questions_truncated"])


if __name__ == "__main__":
    main()
