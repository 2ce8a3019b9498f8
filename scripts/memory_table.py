#!/usr/bin/env python3
"""Prints estimate / measured peak for `perpetual bench --json` reports (scripts/memory_check.sh)."""
import json
import sys

MIB = 1 << 20
print("| family | config | phase | batch x tokens | estimate | peak RSS | estimate / peak |")
print("|---|---|---|---|---:|---:|---:|")
for path in sys.argv[1:]:
    with open(path) as f:
        r = json.load(f)
    for phase in ("scoring", "training"):
        p = r.get(phase)
        if not p:
            continue
        est, peak = p["estimated_bytes"], p["memory"]["peak_rss_bytes"]
        print("| %s | %s | %s | %d x %d | %.0f MiB | %.0f MiB | %.2f |" % (
            r["model"]["family"], r["model"]["source"].split("/")[-1].split(" ")[0], phase,
            r["batch"], r["length"], est / MIB, peak / MIB, est / peak))
