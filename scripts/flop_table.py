#!/usr/bin/env python3
"""Prints the table of scripts/flop_check.sh from its folder of `perpetual bench --json`
reports (rROUND-NAME.json): per family, scoring GFLOP/s (FLOPs of lm.FLOPCounter over the
median run) by wall clock and per CPU second, each round's ratio to Gemma v1 of the same round,
and the range over rounds."""
import glob
import json
import os
import re
import sys


def main(folder):
    runs = {}  # name -> round -> report
    for path in sorted(glob.glob(os.path.join(folder, "r*-*.json"))):
        m = re.match(r"r(\d+)-(.+)\.json$", os.path.basename(path))
        with open(path) as f:
            runs.setdefault(m.group(2), {})[int(m.group(1))] = json.load(f)
    if "gemma" not in runs:
        sys.exit("flop_table: no gemma run to compare with")
    info = os.path.join(folder, "run.txt")
    if os.path.exists(info):
        print(open(info).read().strip())
        print()
    print("| family | params | GFLOP per run | GFLOP/s (wall) by round | vs Gemma v1 (wall) | GFLOP per CPU s by round | vs Gemma v1 (CPU) |")
    print("|---|---:|---:|---|---|---|---|")
    base = runs["gemma"]

    def rng(xs, fmt):
        lo, hi = min(xs), max(xs)
        return fmt.format(lo) if lo == hi else (fmt + "-" + fmt).format(lo, hi)

    for name, by_round in runs.items():
        rounds = sorted(by_round)
        first = by_round[rounds[0]]
        sc = first["scoring"]
        wall = [by_round[r]["scoring"]["gflops"] for r in rounds]
        cpu = [by_round[r]["scoring"].get("cpu_gflops", 0) for r in rounds]
        rel_wall = [by_round[r]["scoring"]["gflops"] / base[r]["scoring"]["gflops"] for r in rounds if r in base]
        rel_cpu = [by_round[r]["scoring"].get("cpu_gflops", 0) / base[r]["scoring"]["cpu_gflops"]
                   for r in rounds if r in base and base[r]["scoring"].get("cpu_gflops")]
        print(f"| {first['model']['family']} | {first['model']['params']:,} | {sc['flops'] / 1e9:.2f} | "
              f"{', '.join(f'{x:.1f}' for x in wall)} | {rng(rel_wall, '{:.2f}')} | "
              f"{', '.join(f'{x:.1f}' for x in cpu)} | {rng(rel_cpu, '{:.2f}') if rel_cpu else '-'} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
