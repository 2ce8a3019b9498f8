"""Reading multiple-choice examples for zoo/experiments/reading.sh.

For every test question of every curriculum under KB_DIR: the question's own passage (title line
+ text, as rag.PassageText) and, two times in three, another passage of the same knowledge base
before or after it, then the question in the letters and in the cloze formulation exactly as
evaluation/tasks/perpetual_{letters,cloze}.yaml render it. Written as the replay JSONL that
`perpetual train --replay` reads: {"instruction": ..., "output": ...}.

    python3 reading_examples.py KB_DIR OUT.jsonl
"""
import json
import os
import random
import sys

LETTERS = "ABCD"
MAX_TWO_PASSAGE_CHARS = 1000  # as zoo/data.go: long pairs keep one passage to fit a 512-token row


def passage(chunk):
    title, text = chunk.get("title", "").strip(), chunk["text"]
    if not title or text.strip().startswith(title):
        return text
    return title + "\n" + text


def main(kb_dir, out_path):
    rng = random.Random(7)
    n = 0
    with open(out_path + ".tmp", "w") as out:
        for kb in sorted(os.listdir(kb_dir)):
            with open(os.path.join(kb_dir, kb, "chunks.jsonl")) as f:
                chunks = [json.loads(line) for line in f]
            by_id = {c["id"]: c for c in chunks}
            with open(os.path.join(kb_dir, kb, "test.jsonl")) as f:
                questions = [json.loads(line) for line in f]
            for q in questions:
                own = by_id[q["chunk_id"]]
                other = rng.choice([c for c in chunks if c["id"] != own["id"]])
                pick = rng.randrange(3)
                if len(own["text"]) + len(other["text"]) > MAX_TWO_PASSAGE_CHARS:
                    pick = 0
                ctx = [passage(own)] if pick == 0 else (
                    [passage(own), passage(other)] if pick == 1 else [passage(other), passage(own)])
                ctx = "\n\n".join(ctx)
                letters = q["question"] + "".join(
                    "\n%s. %s" % (LETTERS[i], c) for i, c in enumerate(q["choices"])) + "\nAnswer:"
                cloze = "Question: " + q["question"] + "\nAnswer:"
                for instruction, output in ((letters, " " + LETTERS[q["answer"]]),
                                            (cloze, " " + q["choices"][q["answer"]])):
                    out.write(json.dumps({"instruction": ctx + "\n\n" + instruction, "output": output}) + "\n")
                    n += 1
    os.replace(out_path + ".tmp", out_path)
    print("%d reading examples -> %s" % (n, out_path), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
