#!/usr/bin/env bash
# Measured peak memory against lm.EstimateMemory, per family (docs/runtime.md, "Memory
# estimates"): each run is its own `perpetual bench --json` process (random weights from a
# config, one phase, one warm-up and one timed run), whose report has the phase's peak RSS
# (VmHWM, reset before the phase) and the estimate; scripts/memory_table.py prints the ratios.
#
#   make build && scripts/memory_check.sh            # the 39 runs below, ~30 minutes on 2 cores
#   RUNS="models/mamba/testdata/bench_config.json training 2x256" scripts/memory_check.sh
#
# The runs: the families' bench configs (models/*/testdata/bench_config*.json) and other sizes
# (scripts/memory_configs: wider, fewer or more heads, fewer layers), so that no constant of
# the estimate is fitted to one shape.
#
# Environment: BIN (default bin/perpetual), OUT (default a temporary folder, the JSON reports),
# RUNS (lines of "CONFIG PHASE BATCHxLENGTH"), DTYPE (default float32).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/perpetual}
OUT=${OUT:-$(mktemp -d)}
DTYPE=${DTYPE:-float32}
G=models/gemma/testdata
L=models/llama/testdata
M=models/mamba/testdata
C=scripts/memory_configs
RUNS=${RUNS:-"
$G/bench_config.json training 2x256
$G/bench_config.json training 4x256
$G/bench_config.json training 2x512
$G/bench_config.json scoring 8x256
$G/bench_config.json scoring 2x1024
$G/bench_config_gemma2.json training 4x256
$G/bench_config_gemma2.json training 2x512
$G/bench_config_gemma2.json scoring 2x1024
$G/bench_config_gemma2.json scoring 1x2048
$G/bench_config_gemma3.json training 4x256
$G/bench_config_gemma3.json scoring 2x1024
$G/bench_config_gemma3.json scoring 8x256
$L/bench_config_llama.json training 4x256
$L/bench_config_llama.json training 2x512
$L/bench_config_llama.json scoring 2x1024
$L/bench_config_qwen3.json training 4x256
$L/bench_config_qwen3.json scoring 8x256
$L/bench_config_qwen3.json scoring 2x1024
$M/bench_config.json training 2x256
$M/bench_config.json training 1x1024
$M/bench_config.json scoring 8x256
$M/bench_config.json scoring 1x2048
$C/llama_d384_l6.json training 2x384
$C/llama_d384_l6.json training 4x256
$C/llama_d384_l6.json training 2x512
$C/llama_d384_l6.json scoring 4x512
$C/llama_l6.json training 4x256
$C/llama_d384_l8.json training 4x256
$C/llama_h6.json training 4x256
$C/mamba_d192_l12.json training 2x256
$C/mamba_d192_l12.json scoring 4x512
$C/gemma2_d320_l6.json training 2x256
$C/gemma2_d320_l6.json scoring 4x512
$C/qwen3_d384_l5.json training 2x512
$C/qwen3_d384_l5.json scoring 2x1024
$C/mamba_d320_l8.json training 1x512
$C/mamba_d320_l8.json scoring 2x1024
$C/gemma_d512_l4.json training 2x256
$C/gemma_d512_l4.json scoring 8x256
"}
[ -x "$BIN" ] || { echo "memory_check: $BIN not found; run make build or set BIN" >&2; exit 1; }
mkdir -p "$OUT"
n=0
while read -r config phase shape; do
	[ -n "${config:-}" ] || continue
	n=$((n + 1))
	batch=${shape%x*} length=${shape#*x}
	name=$(printf '%02d' "$n")-$(basename "$config" .json)-$phase-$shape
	echo "memory_check: $config $phase $shape" >&2
	"$BIN" bench --config "$config" --phases "$phase" --batch "$batch" --length "$length" \
		--warmup 1 --repeats 1 --matmul 0 --dtype "$DTYPE" --memory-limit 100 --json >"$OUT/$name.json"
done <<<"$RUNS"
python3 scripts/memory_table.py "$OUT"/*.json
echo "reports: $OUT" >&2
