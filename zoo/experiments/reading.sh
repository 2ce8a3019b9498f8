#!/usr/bin/env bash
# Experiment (issue 9): does more reading practice teach the committed gemma-tiny to answer from a
# passage? Continues its instruction tuning on reading-only multiple choice about fresh synthetic
# knowledge bases (seeds that no suite uses), then scores base vs RAG on the default suite's
# knowledge bases. Not part of `make results`; docs/zoo.md reports what it measured.
#
#   zoo/experiments/reading.sh OUT [EPOCHS] [SETS]
#
# Needs bin/perpetual (make build) and python3. EPOCHS (default 2) passes over SETS (default 3)
# sets of 3 knowledge bases x 60 entities.
set -euo pipefail
out=${1:?usage: reading.sh OUT [EPOCHS] [SETS]}
epochs=${2:-2}
sets=${3:-3}
bin=${PERPETUAL:-bin/perpetual}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"

# 1. The committed model (run from the repository root).
[ -f "$out/gemma-tiny/config.json" ] || cp -r zoo/checkpoints/gemma-tiny "$out/gemma-tiny"

# 2. Fresh knowledge bases and their reading questions (own passage, a second one 2 times in 3).
for s in $(seq 1 "$sets"); do
  for t in products research code; do
    d="$out/kb/$t-$s"
    [ -f "$d/test.jsonl" ] || "$bin" curriculum build --source synthetic --task "$t" --chunks 60 --seed $((500 + 10 * s)) --quiet --out "$d" >/dev/null
  done
done
python3 "$here/reading_examples.py" "$out/kb" "$out/reading.jsonl"
n=$(wc -l < "$out/reading.jsonl")

# 3. Continue instruction tuning on them (loss on answers only; a 4-chunk curriculum carries the
#    replay file, which holds the reading examples).
[ -f "$out/carrier/test.jsonl" ] || "$bin" curriculum build --source synthetic --task products --chunks 2 --seed 999 --quiet --out "$out/carrier" >/dev/null
items=$(($(wc -l < "$out/carrier/train.jsonl")))
frac=$(python3 -c "print($n / $items)")
"$bin" train --model "$out/gemma-tiny" --curriculum "$out/carrier" --out "$out/reader" \
  --replay "$out/reading.jsonl" --replay-fraction "$frac" --prompt-format gemma --mask answers \
  --epochs "$epochs" --lr 0.001 --batch-size 4 --accumulation 1 --max-length 1024 --order shuffled

# 4. Base vs RAG (k = 1 and 2) on the default suite's knowledge bases, for both models.
cat > "$out/suite.yaml" <<YAML
name: reading
tasks:
  - {name: products, synthetic: {kind: products, seed: 1, chunks: 18, facts_per_chunk: 4}, rag: {retriever: bm25, k: 2}}
  - {name: research, synthetic: {kind: research, seed: 2, chunks: 18, facts_per_chunk: 4}, rag: {retriever: bm25, k: 2}}
  - {name: code, synthetic: {kind: code, seed: 3, chunks: 18, facts_per_chunk: 4}, rag: {retriever: bm25, k: 2}}
models:
  - {name: gemma-tiny, path: "$out/gemma-tiny", prompt_format: gemma}
  - {name: gemma-reader, path: "$out/reader", prompt_format: gemma}
conditions: [base, rag]
formulations: [letters, cloze]
seeds: [1]
eval: {batch_size: 16, bootstrap: 2000}
YAML
"$bin" results --suite "$out/suite.yaml" --out "$out/results" --png=false
