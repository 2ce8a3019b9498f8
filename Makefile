# Perpetual: every target builds with the pinned toolchain and the SIMD kernels of the Go backend.
# GoMLX v0.28.16 needs Go 1.27; machines whose go.env says GOTOOLCHAIN=local still work because
# the toolchain is fetched through the Go module proxy on first use.
export GOTOOLCHAIN := go1.27.4
export GOEXPERIMENT := simd
export GOFLAGS := -buildvcs=false

GO      ?= go
BIN     := bin/perpetual
PKGS    := ./...
FUZZTIME ?= 10s

.PHONY: all build deps test test-short fuzz bench bench-peer vet fmt results zoo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/perpetual

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# The README's test command: unit, golden and conformance tests, then short fuzzing runs.
# Installs the test-only tools that are not Go modules (the JS tokenizer reference, via npm).
deps:
	@if [ -f tools/npm/package.json ]; then cd tools/npm && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; }; fi

test: build deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 30m $(PKGS)
	$(MAKE) fuzz
	$(MAKE) notebooks

# Each fuzz target runs for FUZZTIME (CI keeps it short); the seed corpus always runs in `test`.
fuzz:
	@set -e; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$spec/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$spec $$f"; $(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) $$spec; \
	  done; done

bench: build
	$(GO) test -run='^$$' -bench=. -benchtime=3x -timeout 60m $(PKGS) | tee docs/bench-latest.txt

# Go backend vs PyTorch on the Go benchmarks' configs (scripts/bench_peer.sh): `perpetual bench`
# and scripts/bench_peer.py back to back per shape, THREADS threads each, a ratio table appended to
# docs/benchmarks.md. Needs a quiet machine and /usr/bin/python3 with torch (python3-torch).
PYTHON  ?= /usr/bin/python3
THREADS ?= 2
REPEATS ?= 5
bench-peer: build
	BIN=$(BIN) PYTHON=$(PYTHON) THREADS=$(THREADS) REPEATS=$(REPEATS) scripts/bench_peer.sh

clean:
	rm -rf bin

# --- results (issue 8) -----------------------------------------------------------------------
# Runs the embedded default suite (harness/suites/default.yaml; SUITE=file.yaml or SUITE=paper to
# change it) and writes results/: results.md, results.json, samples/, charts/. Cached cell by cell
# under results/cache, so a second run with nothing changed takes seconds.
SUITE ?= default
# JOBS lanes evaluate the models side by side: one tiny model keeps about 1.15 of two cores busy.
JOBS ?= 2
results: build
	$(BIN) results --suite $(SUITE) --out results --jobs $(JOBS)

# --- notebooks (issue 8) ---------------------------------------------------------------------
# GoNB and goimports come from the pinned tools module (`go install pkg@version` is refused by
# the proxy here); notebooks/run.sh executes every notebook headlessly and fails on any cell error.
.PHONY: notebooks notebook-tools
notebook-tools:
	cd tools/notebooks && $(GO) install tool

notebooks: notebook-tools
	notebooks/run.sh

# --- zoo (issue 9) ---------------------------------------------------------------------------
# Trains the miniature instruct models of the embedded default from zoo/config.yaml (seeded) and
# writes them to zoo/checkpoints/NAME/ (Hugging Face folders + manifest.json), which the binary
# embeds: `make results` copies them out instead of training when their recipe hash matches.
zoo: build
	$(BIN) zoo --out zoo/checkpoints
