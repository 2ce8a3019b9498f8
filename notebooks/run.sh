#!/usr/bin/env bash
# Executes notebooks headlessly on the GoNB kernel and fails if any cell failed.
#
#   notebooks/run.sh                 # every notebooks/*.ipynb
#   notebooks/run.sh a.ipynb b.ipynb # just these
#
# Needs (installed by .ci/run; `make notebook-tools` for the Go part): Debian's jupyter-nbconvert
# and python3-ipykernel (run as /usr/bin/jupyter: a pyenv python earlier on PATH lacks nbconvert),
# gonb and goimports from tools/notebooks, and the gonb kernelspec (`gonb --install`, done here
# when missing). The notebooks import this working tree through PERPETUAL_ROOT.
#
# nbconvert runs with --allow-errors so that every failing cell is reported, not only the first;
# notebooks/nbcheck then fails the run on error outputs, panics, tracebacks, GoNB error displays,
# error text on stderr and cells that never ran (nbconvert itself exits 0 on most of these).
# Executed copies go to a temporary folder (kept, and printed, when something failed), so the
# committed notebooks stay without outputs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The kernel inherits this environment (gonb's kernelspec sets none).
export GOTOOLCHAIN=go1.27.4
export GOEXPERIMENT=simd
export GOMLX_BACKEND="${GOMLX_BACKEND:-go}"
export PERPETUAL_ROOT="$root"
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"

jupyter=/usr/bin/jupyter
die() { echo "notebooks/run.sh: $*" >&2; exit 1; }
[ -x "$jupyter" ] || die "$jupyter missing: apt-get install -y jupyter-nbconvert python3-ipykernel"
"$jupyter" nbconvert --version >/dev/null 2>&1 || die "jupyter nbconvert does not run: apt-get install -y jupyter-nbconvert"
command -v gonb >/dev/null || die "gonb not on PATH ($gobin): make notebook-tools"
command -v goimports >/dev/null || die "goimports not on PATH ($gobin): make notebook-tools"
datadir="$("$jupyter" --data-dir)"
spec="$datadir/kernels/gonb/kernel.json"
# (Re)install when missing or when it points at another gonb binary than the one on PATH.
if [ ! -f "$spec" ] || ! grep -qF "\"$(command -v gonb)\"" "$spec"; then
  echo "== installing the gonb kernelspec"
  # gopls (code completion) is not needed headlessly: --force_deps installs without it.
  (cd /tmp && gonb --install --force_deps --logtostderr >/dev/null 2>&1) || die "gonb --install failed"
  [ -f "$spec" ] || die "gonb --install wrote no kernelspec under $datadir"
fi

if [ $# -gt 0 ]; then
  notebooks=("$@")
else
  notebooks=("$root"/notebooks/*.ipynb)
fi
[ -e "${notebooks[0]}" ] || die "no notebooks found"

out="$(mktemp -d "${TMPDIR:-/tmp}/perpetual-notebooks.XXXXXX")"
go build -o "$out/nbcheck" ./notebooks/nbcheck

status=0
for nb in "${notebooks[@]}"; do
  name="$(basename "$nb")"
  start=$(date +%s)
  echo "== $name"
  # The kernel's own log (startup noise, "killing gopls") goes to a file, shown on failure.
  if ! "$jupyter" nbconvert --to notebook --execute --allow-errors \
      --ExecutePreprocessor.kernel_name=gonb --ExecutePreprocessor.timeout=1200 \
      --output-dir "$out" "$nb" >"$out/$name.log" 2>&1; then
    tail -n 40 "$out/$name.log" >&2
    echo "FAIL $name: nbconvert failed (log: $out/$name.log)" >&2
    status=1
    continue
  fi
  if ! "$out/nbcheck" "$out/$name"; then
    echo "FAIL $name: see the cells above (executed copy: $out/$name)" >&2
    status=1
    continue
  fi
  echo "ok   $name ($(( $(date +%s) - start )) s)"
done

if [ $status -eq 0 ]; then
  rm -rf "$out"
else
  echo "executed notebooks and logs kept in $out" >&2
fi
exit $status
