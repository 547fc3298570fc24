#!/usr/bin/env python3
"""latency.py [--ops N] [--json OUT] BEFORE.json AFTER.json [LABEL]

Per-stage latency of a netraid daemon over a run, from two snapshots of
its histograms (package internal/lat, written every second to the file
NETRAID_LATENCY names): the counts and sums AFTER less BEFORE, so only
the run's requests count. Prints, per stage that saw any: the count (and
per operation, with --ops: how many times a client's operation passed
through it), the mean, and the median and p99 estimated within a
quarter-octave bucket.
"""

import argparse
import json
import sys


def load(path):
    with open(path) as f:
        return {h["stage"]: h for h in json.load(f)}


def diff(before, after):
    out = {}
    for stage, a in after.items():
        b = before.get(stage, {"count": 0, "sum_ns": 0, "buckets": None})
        bb = {x["le_ns"]: x["count"] for x in (b["buckets"] or [])}
        buckets = []
        for x in a["buckets"] or []:
            n = x["count"] - bb.get(x["le_ns"], 0)
            if n > 0:
                buckets.append((x["le_ns"], n))
        count = a["count"] - b["count"]
        if count > 0:
            out[stage] = {"count": count, "sum_ns": a["sum_ns"] - b["sum_ns"], "buckets": buckets}
    return out


def lower_of(buckets_all, le):
    """The lower bound of the bucket whose upper bound is le: bounds are
    2^e + q*2^(e-2); the previous bound is le less a quarter of its
    octave's base."""
    if le == 0:
        return 0
    e = le.bit_length() - 1
    if le == 1 << e:  # a power of two: the last quarter of the octave below
        return le - (1 << (e - 3))
    return le - (1 << (e - 2))


def quantile(h, q):
    rank = q * h["count"]
    seen = 0
    last = 0
    for le, n in h["buckets"]:
        if le == 0:
            return last
        if seen + n >= rank:
            lo = lower_of(None, le)
            return lo + (le - lo) * (rank - seen) / n
        seen += n
        last = le
    return last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=0, help="client operations in the run, for per-op counts")
    ap.add_argument("--json", help="write the table as JSON here too")
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("label", nargs="?", default="")
    a = ap.parse_args()
    d = diff(load(a.before), load(a.after))
    rows = []
    for stage, h in d.items():
        rows.append({
            "stage": stage, "count": h["count"],
            "per_op": h["count"] / a.ops if a.ops else None,
            "mean_us": h["sum_ns"] / h["count"] / 1000,
            "p50_us": quantile(h, 0.5) / 1000, "p99_us": quantile(h, 0.99) / 1000,
        })
    if a.label:
        print(f"-- {a.label}")
    print(f"{'stage':<22} {'count':>9} {'per op':>7} {'mean us':>9} {'p50 us':>9} {'p99 us':>9}")
    for r in rows:
        per = f"{r['per_op']:.2f}" if r["per_op"] is not None else "-"
        print(f"{r['stage']:<22} {r['count']:>9} {per:>7} {r['mean_us']:>9.1f} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"label": a.label, "ops": a.ops, "stages": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
