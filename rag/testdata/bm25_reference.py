#!/usr/bin/python3
"""Independent BM25 reference for rag/bm25_test.go.

Reads bm25_corpus.json, writes bm25_golden.json: for every parameter set and query, the Okapi
BM25 score of every chunk, computed term by term as in the textbook formula:

    score(d, q) = sum over distinct query terms t:
        idf(t) * tf(t,d) * (k1+1) / (tf(t,d) + k1 * (1 - b + b*|d|/avgdl))
    idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))

Tokens: lowercase, maximal runs of Unicode letters/digits ([^\\W_]+), optional stopwords (the
list is copied from rag/tokenize.go's Stopwords). Passage text: title + newline + text when the
title is non-empty and the text does not already start with it.

Run: /usr/bin/python3 rag/testdata/bm25_reference.py
"""
import json
import math
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))

STOP = set("""a an and are as at be but by for if in into is it no not of on or such
that the their then there these they this to was will with what which who whom how when where why
does do did has have had i you he she we its our your from than so can""".split())


def tokens(text, stop):
    toks = re.findall(r"[^\W_]+", text.lower())
    return [t for t in toks if not (stop and t in STOP)]


def passage(c):
    title = c["title"].strip()
    if not title or c["text"].strip().startswith(title):
        return c["text"]
    return title + "\n" + c["text"]


def main():
    with open(os.path.join(HERE, "bm25_corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    out = []
    for p in corpus["params"]:
        k1, b, stop = p["k1"], p["b"], p["stopwords"]
        docs = [tokens(passage(c), stop) for c in corpus["chunks"]]
        n = len(docs)
        avgdl = sum(len(d) for d in docs) / n
        rows = []
        for q in corpus["queries"]:
            terms = []
            for t in tokens(q, stop):
                if t not in terms:
                    terms.append(t)
            scores = []
            for d in docs:
                s = 0.0
                for t in terms:
                    tf = d.count(t)
                    if tf == 0:
                        continue
                    df = sum(1 for e in docs if t in e)
                    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                    s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
                scores.append(s)
            rows.append({"query": q, "scores": scores})
        out.append({"params": p, "results": rows})
    with open(os.path.join(HERE, "bm25_golden.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
