#!/usr/bin/python3
"""Independent reference for the evaluator (package evaluation) on tiny Gemma and Mamba checkpoints.

It re-implements, in plain Python, lm-evaluation-harness's multiple_choice scoring as documented
(HFLM._encode_pair, _loglikelihood_tokens, process_results) and runs the models with the
plain-torch forward passes of models/gemma/testdata/make_golden.py (checkpoint
models/gemma/testdata/mha: BOS prepended, window 64, so some prompts are left-truncated) and
models/mamba/testdata/make_golden.py (checkpoint models/mamba/testdata/k4_bias_s16: no BOS, no
window). Writes, next to this script:

  tiny_vocab_<model>.json  the toy tokenizer: greedy longest match over these pieces (ids from 4;
                           id 3 is <unk>, one per unknown character); BOS = 2. Mamba's vocabulary
                           (64 ids) keeps the first 60 pieces.
  tiny_questions.jsonl     300 seeded questions (curriculum.Question records)
  tiny_reference.json      per model, per formulation, per question: log-likelihoods, is_greedy,
                           continuation token counts, truncated tokens, prediction, acc,
                           acc_norm, acc_bytes

Run from the repository root: /usr/bin/python3 evaluation/testdata/reference.py
"""
import importlib.util
import json
import math
import os
import random
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEMMA = load_module("gemma_golden", os.path.join(ROOT, "models", "gemma", "testdata", "make_golden.py"))
MAMBA = load_module("mamba_golden", os.path.join(ROOT, "models", "mamba", "testdata", "make_golden.py"))

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


def encode(text, pieces):
    """Greedy longest match; unknown characters become <unk>."""
    ids, i = [], 0
    while i < len(text):
        best = -1
        for j, p in enumerate(pieces):
            if text.startswith(p, i) and (best < 0 or len(p) > len(pieces[best])):
                best = j
        if best < 0:
            ids.append(UNK)
            i += 1
        else:
            ids.append(best + 4)
            i += len(pieces[best])
    return ids


def encode_pair(context, continuation, pieces, add_bos):
    # HFLM._encode_pair: trailing whitespace of the context moves to the continuation.
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    bos = [BOS] if add_bos else []
    whole = bos + encode(context + continuation, pieces)
    ctx = bos + encode(context, pieces)
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


def gemma_model():
    d = os.path.join(ROOT, "models", "gemma", "testdata", "mha")
    cfg = json.load(open(os.path.join(d, "config.json")))
    W = read_safetensors(os.path.join(d, "model.safetensors"))
    return dict(name="gemma", dir="models/gemma/testdata/mha", pieces=PIECES, add_bos=True,
                max_len=cfg["max_position_embeddings"], vocab=cfg["vocab_size"],
                logits=lambda inp: GEMMA.forward(W, cfg, torch.tensor([inp], dtype=torch.long))[0])


def mamba_model():
    d = os.path.join(ROOT, "models", "mamba", "testdata", "k4_bias_s16")
    cfg = json.load(open(os.path.join(d, "config.json")))
    W = {k: v.double() for k, v in read_safetensors(os.path.join(d, "model.safetensors")).items()}
    rank = cfg["time_step_rank"]
    cfg_run = dict(cfg, _rank=math.ceil(cfg["hidden_size"] / 16) if rank == "auto" else rank)
    return dict(name="mamba", dir="models/mamba/testdata/k4_bias_s16", pieces=PIECES[:cfg["vocab_size"] - 4],
                add_bos=False, max_len=0, vocab=cfg["vocab_size"],
                logits=lambda inp: MAMBA.forward(W, torch.tensor([inp], dtype=torch.long), cfg_run)[0])


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


def score_model(model, qs):
    pieces, add_bos, max_len = model["pieces"], model["add_bos"], model["max_len"]
    assert model["vocab"] >= len(pieces) + 4
    memo = {}

    def loglik(ctx, cont):
        # _loglikelihood_tokens: keep the last max_len+1 tokens (no window: all), feed all but the last.
        full = (ctx + cont)[-(max_len + 1):] if max_len else ctx + cont
        inp = full[:-1]
        key = tuple(inp)
        if key not in memo:
            with torch.no_grad():
                memo[key] = torch.log_softmax(model["logits"](inp).double(), dim=-1)
        lp = memo[key][len(inp) - len(cont):]
        tgt = torch.tensor(cont)
        greedy = bool((lp.argmax(dim=-1) == tgt).all())
        trunc = max(0, len(ctx) + len(cont) - (max_len + 1)) if max_len else 0
        return float(lp[torch.arange(len(cont)), tgt].sum()), greedy, trunc

    out = {"model": model["dir"], "max_length": max_len, "add_bos": add_bos, "formulations": {}}
    for form, (tmpl, fixed) in TEMPLATES.items():
        rows = []
        for q in qs:
            prompt = tmpl.replace("{question}", q["question"])
            for k, c in enumerate(q["choices"]):
                prompt = prompt.replace("{c%d}" % k, c)
            choices = fixed if fixed is not None else q["choices"]
            lls, greedy, ntok, trunc = [], [], [], 0
            for c in choices:
                ctx, cont = encode_pair(prompt, DELIM + c, pieces, add_bos)
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
    return out


def main():
    rnd = random.Random(6)
    qs = make_questions(rnd, 300)
    with open(os.path.join(HERE, "tiny_questions.jsonl"), "w") as f:
        for q in qs:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    ref = {}
    for model in (gemma_model(), mamba_model()):
        with open(os.path.join(HERE, "tiny_vocab_%s.json" % model["name"]), "w") as f:
            json.dump({"bos": BOS, "unk": UNK, "first_piece_id": 4, "pieces": model["pieces"]}, f, indent=1)
            f.write("\n")
        ref[model["name"]] = score_model(model, qs)
        for form, r in ref[model["name"]]["formulations"].items():
            print(model["name"], form, "acc", r["acc"], "acc_norm", r["acc_norm"], "acc_bytes", r["acc_bytes"],
                  "truncated", r["questions_truncated"])
    with open(os.path.join(HERE, "tiny_reference.json"), "w") as f:
        json.dump(ref, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
