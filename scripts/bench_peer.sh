#!/bin/sh
# Go backend vs PyTorch on the same shapes: `perpetual bench` and scripts/bench_peer.py, back to
# back per shape, then a ratio table appended to docs/benchmarks.md (scripts/bench_table.py).
# Run on a quiet machine (`make bench-peer`); every variable below can be overridden:
#
#   BIN=bin/perpetual PYTHON=/usr/bin/python3 THREADS=2 WARMUP=1 REPEATS=5 OUT=docs/benchmarks.md
#   GEMMA_SHAPES="8x256" MAMBA_SHAPES="8x256 1x2048" scripts/bench_peer.sh
#   (GEMMA_CONFIG and MAMBA_CONFIG name other config.json files; default: the Go benchmarks')
#
# Both sides use THREADS threads (GOMAXPROCS for the Go backend, torch.set_num_threads for the
# peer). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the peer's command only.
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/perpetual}
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-1}
REPEATS=${REPEATS:-5}
OUT=${OUT:-docs/benchmarks.md}
GEMMA_SHAPES=${GEMMA_SHAPES:-8x256}
MAMBA_SHAPES=${MAMBA_SHAPES:-8x256 1x2048}
GEMMA_CONFIG=${GEMMA_CONFIG:-models/gemma/testdata/bench_config.json}
MAMBA_CONFIG=${MAMBA_CONFIG:-models/mamba/testdata/bench_config.json}

[ -x "$BIN" ] || { echo "bench_peer: $BIN not found; run make build first" >&2; exit 1; }
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "bench_peer: $PYTHON has no torch (Debian: apt-get install python3-torch)" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT+changes"; fi

run() { # family config shape
	B=${3%x*}
	T=${3#*x}
	echo "bench_peer: $1 $B x $T: Go" >&2
	GOMAXPROCS=$THREADS "$BIN" bench --config "$2" --batch "$B" --length "$T" --warmup "$WARMUP" --repeats "$REPEATS" --json \
		>"$TMP/go-$1-$3.json"
	echo "bench_peer: $1 $B x $T: PyTorch" >&2
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PYTHON" scripts/bench_peer.py --config "$2" --batch "$B" --length "$T" \
		--warmup "$WARMUP" --repeats "$REPEATS" --threads "$THREADS" >"$TMP/torch-$1-$3.json"
}

for s in $GEMMA_SHAPES; do run gemma "$GEMMA_CONFIG" "$s"; done
for s in $MAMBA_SHAPES; do run mamba "$MAMBA_CONFIG" "$s"; done
"$PYTHON" scripts/bench_table.py --out "$OUT" --load "$LOAD" --commit "$COMMIT" "$TMP"/*.json
