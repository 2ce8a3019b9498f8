#!/usr/bin/env bash
# Scoring throughput per model FLOP of every attention family against Gemma v1 on the same
# backend (issue 18: "within 10% of Gemma v1's, no family is a slow path"; docs/llama.md,
# docs/gemma.md). Each family runs `perpetual bench --phases scoring` on a config of Gemma v1's
# bench shapes (vocabulary 8192, hidden 256, MLP 1024, 8 layers, 4 heads of 64, 1 KV head,
# tied head; the sliding window 512 >= the length, so Gemma 2/3's sliding layers mask nothing
# more than causality): the same FLOP count per row (lm.FLOPCounter, checked against the graph
# by TestLogitsFLOPsMatchTheGraph), so GFLOP/s compares like with like. Each run is its own
# process; the families take turns, ROUNDS times, the order reversed every other round;
# scripts/flop_table.py prints GFLOP/s (wall clock and per CPU second) and each family's ratio
# to Gemma v1 of the same round.
#
#   make build && scripts/flop_check.sh
#   NICE="nice -n 19" ROUNDS=3 BATCH=4 LENGTH=256 scripts/flop_check.sh
#   INPROCESS=1 scripts/flop_check.sh    # instead: all families in one Go test process
#                                        # (bench.TestScoringPerCPUSecond, 4 x 256, 6 rounds),
#                                        # plus Gemma 2 without its soft caps
#
# Environment: BIN (default bin/perpetual), OUT (default a temporary folder, the JSON
# reports), ROUNDS (2), BATCH (4), LENGTH (256, at most 512, the window), WARMUP (1),
# REPEATS (3), NICE (a command prefix, e.g. "nice -n 19"; default none), CONFIGS (lines of
# "NAME CONFIG").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/perpetual}
OUT=${OUT:-$(mktemp -d)}
ROUNDS=${ROUNDS:-2}
BATCH=${BATCH:-4}
LENGTH=${LENGTH:-256}
WARMUP=${WARMUP:-1}
REPEATS=${REPEATS:-3}
NICE=${NICE:-}
G=models/gemma/testdata
L=models/llama/testdata
CONFIGS=${CONFIGS:-"
gemma $G/bench_config.json
gemma2 $G/flop_config_gemma2.json
gemma3_text $G/flop_config_gemma3.json
llama $L/flop_config_llama.json
qwen2 $L/flop_config_qwen2.json
qwen3 $L/flop_config_qwen3.json
"}
if [ -n "${INPROCESS:-}" ]; then
	spec=$(grep -v '^[[:space:]]*$' <<<"$CONFIGS" | awk -v root="$PWD" '{printf "%s%s=%s/%s", (NR > 1 ? "," : ""), $1, root, $2} $1 == "gemma2" {printf ",gemma2-nocaps=%s/%s", root, $2}')
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	PERPETUAL_FLOP_CHECK=$spec $NICE go test ./bench/ -count=1 -run '^TestScoringPerCPUSecond$' -v -timeout 60m |
		grep -E 'rounds of|GFLOP/CPU s|^(ok|FAIL|---)'
	exit "${PIPESTATUS[0]}"
fi
[ -x "$BIN" ] || { echo "flop_check: $BIN not found; run make build or set BIN" >&2; exit 1; }
mkdir -p "$OUT"
mapfile -t lines < <(grep -v '^[[:space:]]*$' <<<"$CONFIGS")
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
	echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "command: $NICE $BIN bench --config CONFIG --phases scoring --batch $BATCH --length $LENGTH --warmup $WARMUP --repeats $REPEATS --matmul 0 --json"
} >"$OUT/run.txt"
for round in $(seq 1 "$ROUNDS"); do
	order=("${lines[@]}")
	if ((round % 2 == 0)); then
		order=()
		for ((i = ${#lines[@]} - 1; i >= 0; i--)); do order+=("${lines[i]}"); done
	fi
	for line in "${order[@]}"; do
		read -r name config <<<"$line"
		echo "flop_check: round $round, $name ($config)" >&2
		$NICE "$BIN" bench --config "$config" --phases scoring --batch "$BATCH" --length "$LENGTH" \
			--warmup "$WARMUP" --repeats "$REPEATS" --matmul 0 --json >"$OUT/r$round-$name.json"
	done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/run.txt"
python3 scripts/flop_table.py "$OUT"
echo "reports: $OUT" >&2
