#!/usr/bin/python3
"""Known leakage of the paper's curricula, computed independently of curriculum/leakage.

Reads ../shared/datasets/perpetual/{research,products}/{train,test}.json as published (plain
json, no project code) and writes known.json: the number of test questions, how many are
character-for-character identical to a training flashcard ("qna") question, and the count of
each answer letter. leakage_test.go checks Analyze against it.

Run from the repository root: /usr/bin/python3 curriculum/leakage/testdata/make_known.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "..", "shared", "datasets", "perpetual")


def known(task):
    with open(os.path.join(DATA, task, "train.json")) as f:
        train = json.load(f)
    with open(os.path.join(DATA, task, "test.json")) as f:
        test = json.load(f)
    cards = {item["question"] for item in train if item["type"] == "qna"}
    letters = [0, 0, 0, 0]
    for q in test:
        letters["ABCD".index(q["answer"].strip())] += 1
    return {"questions": len(test), "verbatim": sum(q["question"] in cards for q in test), "letters": letters}


def main():
    out = {task: known(task) for task in ("research", "products")}
    with open(os.path.join(HERE, "known.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
