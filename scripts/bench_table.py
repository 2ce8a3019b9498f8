#!/usr/bin/python3
"""Append a Go-vs-PyTorch ratio table to docs/benchmarks.md from `perpetual bench --json` reports
and scripts/bench_peer.py reports (any order: each Go report is paired with the PyTorch report of
the same family, batch and length).

  scripts/bench_table.py --out docs/benchmarks.md [--load "0.10 0.30 0.40"] [--commit abc1234] FILE.json...
"""
import argparse
import json
import os
import sys

HEADER = """# Benchmarks: Go backend vs PyTorch on the same shapes

Appended by `make bench-peer` (scripts/bench_peer.sh): `perpetual bench` (the production scoring and
training paths, see docs/training.md) and its PyTorch peer scripts/bench_peer.py on the configs of the
Go benchmarks (models/gemma/testdata/bench_config.json, models/mamba/testdata/bench_config.json),
run back to back with the same number of threads. tokens/s is the median of the timed runs (range:
slowest to fastest run); Go / torch > 1 means the Go backend is faster. GFLOP/s counts the
architecture's arithmetic (lm.FLOPCounter: forward ~2 x parameters x tokens plus attention,
training 3 x forward) and the share is of the float32 matmul rate measured in the same Go run.
Numbers from a shared machine are not comparable across sections; within a section both sides ran
in the same minutes.
"""


def fmt_int(x):
    return f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="markdown file to append to (created with a header)")
    ap.add_argument("--load", default="", help="load average when the run started")
    ap.add_argument("--commit", default="", help="commit of the Go code measured")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    go, peer = {}, {}
    for path in args.files:
        with open(path) as f:
            r = json.load(f)
        if r.get("peer") == "torch":
            peer[(r["family"], r["batch"], r["length"])] = r
        elif "machine" in r:
            go[(r["model"]["family"], r["batch"], r["length"])] = r
        else:
            sys.exit(f"{path}: neither a `perpetual bench --json` nor a bench_peer.py report")
    keys = sorted((k for k in go if k in peer), key=lambda k: (k[0], -k[1], k[2]))
    missing = sorted(set(go) ^ set(peer))
    if not keys:
        sys.exit("no Go report has a PyTorch report of the same family, batch and length")
    if missing:
        sys.exit(f"reports without a partner: {missing}")

    first = go[keys[0]]
    m = first["machine"]
    date = first["date"]
    cpu_kernel = f"{m['kernel']} / {m['cpu']}"
    matmul = first.get("matmul_peak")
    torch_r = peer[keys[0]]
    lines = [f"\n## {date.replace('T', ' ').replace('Z', ' UTC')}: {m['cpu']}, kernel {m['kernel']}, {torch_r['threads']} threads\n"]
    notes = [f"Go {m['go_version']}, backend {m['backend_config']} (GOMAXPROCS {m['gomaxprocs']} of {m['cores']} CPUs)"]
    if matmul:
        layouts = ", ".join(f"{l['layout']} {l['gflops']:.1f}" for l in matmul.get("layouts") or [])
        by_layout = f" (by layout: {layouts})" if layouts else ""
        of_layout = f", {matmul['layout']} layout" if matmul.get("layout") else ""
        products = f"{matmul['products']} chained {matmul['n']}^3 products per run" if matmul.get("products") else f"{matmul['n']}^3"
        per_cpu = ""
        if matmul.get("cpu_gflops"):
            per_cpu = f"; {matmul['cpu_gflops']:.1f} GFLOP per CPU second, {matmul.get('cores', 0):.2f} cores in the best run"
        notes.append(f"float32 matmul peak {matmul['gflops']:.1f} GFLOP/s ({products}, best run{of_layout}){by_layout}{per_cpu}")
    notes.append(f"PyTorch {torch_r['torch']} (Python {torch_r['python']}, {torch_r['threads']} threads)")
    scans = sorted({p.get("mamba_scan") for p in peer.values() if p.get("mamba_scan")})
    if scans:
        notes.append("Mamba peer scan: " + ", ".join(scans) + " (see scripts/bench_peer.py)")
    blas = {k: v for p in peer.values() for k, v in p.get("openblas_env", {}).items()}
    notes.append("OpenBLAS variables seen by the peer: " + (", ".join(f"{k}={v}" for k, v in blas.items()) or "none"))
    if args.commit:
        notes.append(f"commit {args.commit}")
    if args.load:
        notes.append(f"load average at the start {args.load}")
    notes.append(f"{first['warmup']} warm-up + {first['repeats']} timed runs per phase")
    lines.append("; ".join(notes) + ".\n")
    lines.append("| date | kernel / CPU | model | batch x length | phase | Go tok/s | torch tok/s | Go / torch | Go GFLOP/s (of peak) |")
    lines.append("|---|---|---|---|---|---:|---:|---:|---:|")
    for k in keys:
        g, p = go[k], peer[k]
        n = g["model"]["params"]
        model = f"{g['model']['family']} " + (f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K")
        for phase in ("scoring", "training"):
            gp, pp = g.get(phase), p.get(phase)
            if not gp or not pp:
                continue
            gtok = f"{fmt_int(gp['tokens_per_s'])} ({fmt_int(gp['tokens_per_s_min'])}-{fmt_int(gp['tokens_per_s_max'])})"
            ptok = f"{fmt_int(pp['tokens_per_s'])} ({fmt_int(pp['tokens_per_s_min'])}-{fmt_int(pp['tokens_per_s_max'])})"
            ratio = gp["tokens_per_s"] / pp["tokens_per_s"]
            gfl = "-"
            if gp.get("gflops"):
                gfl = f"{gp['gflops']:.1f}"
                if gp.get("utilisation"):
                    gfl += f" ({100 * gp['utilisation']:.0f}%)"
            lines.append(f"| {date[:10]} | {cpu_kernel} | {model} | {k[1]} x {k[2]} | {phase} | {gtok} | {ptok} | {ratio:.2f} | {gfl} |")
    new = not os.path.exists(args.out)
    with open(args.out, "a") as f:
        if new:
            f.write(HEADER)
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
