#!/usr/bin/env python3
"""report.py RESULTS.jsonl OUT.json: the benchmark's table and JSON.

RESULTS is the log bench.sh writes, one JSON object per line, by kind:
  meta      facts about the run (merged)
  suite     suite, title, subject, min_ratio_peer, rss_limit_mib
  workload  suite, workload, desc, metric (MiB/s or kIOPS)
  target    suite, target, role (baseline | peer | subject | info), desc
  run       suite, target, workload, status, and either fio_json (fio's
            JSON output) or value (a figure measured some other way, in
            the workload's metric); wall_s, server_cpu_s
  rss       suite, target, peak_rss_kib
  probe     suite, anything: printed and kept
  note      suite, target?, text

For every subject (and, marked informative, every info target) it prints
the ratio to the best peer and to the baseline on every workload, and its
peak RSS against the limit, each with "target met" or "TARGET MISSED".
Exits 0 when every run completed (targets met or not), 3 when a run failed.
"""

import json
import sys

ROLES = ("baseline", "peer", "subject", "info")


def load(path):
    meta, suites = {}, {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            kind = rec.pop("kind")
            if kind == "meta":
                meta.update(rec)
                continue
            s = suites.setdefault(rec["suite"], {
                "title": rec["suite"], "workloads": [], "targets": [], "runs": {},
                "rss": {}, "probes": [], "notes": [],
            })
            if kind == "suite":
                s.update({k: v for k, v in rec.items() if k != "suite"})
            elif kind == "workload":
                s["workloads"].append({k: v for k, v in rec.items() if k != "suite"})
            elif kind == "target":
                s["targets"].append({k: v for k, v in rec.items() if k != "suite"})
            elif kind == "run":
                s["runs"].setdefault((rec["target"], rec["workload"]), []).append(rec)
            elif kind == "rss":
                s["rss"][rec["target"]] = rec["peak_rss_kib"]
            elif kind == "probe":
                s["probes"].append(rec)
            elif kind == "note":
                s["notes"].append(rec)
    return meta, suites


def fio_figures(path, metric):
    """The figures of a one-job fio run, over both directions."""
    with open(path) as f:
        job = json.load(f)["jobs"][0]
    if job.get("error"):
        raise ValueError(f"fio job error {job['error']}")
    dirs = [job[d] for d in ("read", "write") if job[d]["io_bytes"] > 0]
    if not dirs:
        raise ValueError("fio did no I/O")
    bw = sum(d["bw_bytes"] for d in dirs)
    iops = sum(d["iops"] for d in dirs)
    lat = dirs[0]["clat_ns"]
    pct = lat.get("percentile", {})
    return {
        "value": bw / 2**20 if metric == "MiB/s" else iops / 1000,
        "bw_mib_s": bw / 2**20,
        "iops": iops,
        "lat_mean_us": lat["mean"] / 1000,
        "lat_p99_us": pct.get("99.000000", 0) / 1000,
    }


def one_run(run, metric, server):
    """Figures of one run, or raises ValueError."""
    if run["status"] != "ok":
        raise ValueError(f"failed (see {run.get('error_log', 'log')})")
    try:
        out = {"value": float(run["value"])} if "value" in run else fio_figures(run["fio_json"], metric)
    except (OSError, KeyError, IndexError) as e:
        raise ValueError(f"unreadable result: {e}") from e
    if server and run.get("wall_s"):
        out["server_cpu_pct"] = 100 * run.get("server_cpu_s", 0) / run["wall_s"]
    return out


def figures(suite, target, wl):
    """The figures of a target on a workload: the run with the median value
    when there were several rounds (all values kept); None and the reason
    when any run failed."""
    runs = suite["runs"].get((target, wl["workload"]))
    if not runs:
        return None, "not run"
    server = target_role(suite, target) != "baseline"
    try:
        got = sorted((one_run(r, wl["metric"], server) for r in runs), key=lambda f: f["value"])
    except ValueError as e:
        return None, str(e)
    out = dict(got[(len(got) - 1) // 2])
    if len(got) > 1:
        out["rounds"] = [f["value"] for f in got]
    return out, None


def target_role(suite, name):
    return next(t["role"] for t in suite["targets"] if t["target"] == name)


def compare(suite):
    """Ratios and verdicts for the subject and info targets."""
    need = float(suite.get("min_ratio_peer", 1.0))
    peers = [t["target"] for t in suite["targets"] if t["role"] == "peer"]
    base = next((t["target"] for t in suite["targets"] if t["role"] == "baseline"), None)
    res = suite["results"]
    rows = []
    for t in suite["targets"]:
        if t["role"] not in ("subject", "info"):
            continue
        for wl in suite["workloads"]:
            w = wl["workload"]
            mine = res[t["target"]][w]["value"]
            got = [(res[p][w]["value"], p) for p in peers if res[p][w]["value"] is not None]
            best_v, best = max(got) if got else (None, None)
            base_v = res[base][w]["value"] if base else None
            row = {
                "target": t["target"], "workload": w, "value": mine,
                "best_peer": best, "best_peer_value": best_v,
                "ratio_best_peer": mine / best_v if mine is not None and best_v else None,
                "baseline": base, "baseline_value": base_v,
                "ratio_baseline": mine / base_v if mine is not None and base_v else None,
                "min_ratio_best_peer": need,
            }
            if t["role"] == "info":
                row["verdict"] = "informative"
            elif row["ratio_best_peer"] is None:
                row["verdict"] = "TARGET MISSED" if mine is None else "no peer figure"
            else:
                row["verdict"] = "target met" if row["ratio_best_peer"] >= need else "TARGET MISSED"
            rows.append(row)
    return rows


def rss_rows(suite):
    limit = suite.get("rss_limit_mib")
    rows = []
    for t in suite["targets"]:
        if t["role"] not in ("subject", "info") or not limit:
            continue
        kib = suite["rss"].get(t["target"])
        mib = kib / 1024 if kib is not None else None
        verdict = "TARGET MISSED" if mib is None or mib >= limit else "target met"
        rows.append({"target": t["target"], "peak_rss_mib": mib, "limit_mib": limit, "verdict": verdict})
    return rows


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def table(rows, out, left=(0,)):
    """Print rows as columns, those numbered in LEFT left-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join(cells).rstrip(), file=out)


def other_cpu_pct(meta):
    """Share of the machine's CPU that processes other than the benchmark's
    used during the run, in percent, or None when unknown."""
    try:
        a = [int(x) for x in meta["cpu_stat_start"].split()[1:9]]
        b = [int(x) for x in meta["cpu_stat_end"].split()[1:9]]
        tck, elapsed, cpus = meta["clk_tck"], meta["elapsed_s"], meta["cpus"]
    except (KeyError, ValueError):
        return None
    idle = (b[3] - a[3]) + (b[4] - a[4])  # idle and iowait
    busy = (sum(b) - sum(a) - idle) / tck
    return max(0.0, 100 * (busy - meta.get("own_cpu_s", 0)) / (elapsed * cpus)) if elapsed else None


def print_suite(name, s, out):
    print(f"\n== suite {name}: {s['title']} ==", file=out)
    names = [t["target"] for t in s["targets"]]
    head = [["workload", "unit"] + names]
    body = []
    for wl in s["workloads"]:
        w = wl["workload"]
        body.append([wl["desc"], wl["metric"]] + [fmt(s["results"][n][w]["value"]) for n in names])
    for wl in s["workloads"]:
        w = wl["workload"]
        body.append([f"server CPU, {wl['workload']}", "%core"] +
                    [fmt(s["results"][n][w].get("server_cpu_pct"), 0) for n in names])
    body.append(["peak RSS", "MiB"] +
                [fmt(s["rss"][n] / 1024) if n in s["rss"] else "-" for n in names])
    table(head + body, out, left=(0, 1))
    for t in s["targets"]:
        print(f"  {t['target']:<14} {t['role']:<8} {t['desc']}", file=out)

    base = next((t["target"] for t in s["targets"] if t["role"] == "baseline"), "baseline")
    rows = [["", "workload", "value", "best peer", "", "vs peer", f"vs {base}", ""]]
    for c in s["comparisons"]:
        wl = next(w for w in s["workloads"] if w["workload"] == c["workload"])
        rows.append([c["target"], wl["desc"], fmt(c["value"]), fmt(c["best_peer_value"]),
                     c["best_peer"] or "", ratio(c["ratio_best_peer"]), ratio(c["ratio_baseline"]),
                     c["verdict"]])
    for r in s["rss_check"]:
        rows.append([r["target"], f"peak RSS, MiB (limit {r['limit_mib']})", fmt(r["peak_rss_mib"]),
                     "", "", "", "", r["verdict"]])
    if len(rows) > 1:
        need = s.get("min_ratio_peer", 1.0)
        print(f"\ntargets: >= {need:.1f}x the best peer on every workload; peak RSS under the limit", file=out)
        table(rows, out, left=(0, 1, 4, 7))
    for p in s["probes"]:
        extra = {k: v for k, v in p.items() if k != "suite"}
        print("probe: " + ", ".join(f"{k}={v}" for k, v in extra.items()), file=out)
    for n in s["notes"]:
        print(f"note: {n.get('target', '')} {n['text']}".replace("  ", " "), file=out)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: report.py RESULTS.jsonl OUT.json")
    meta, suites = load(sys.argv[1])
    failed = []
    for name, s in suites.items():
        s["results"] = {}
        for t in s["targets"]:
            assert t["role"] in ROLES, t
            per = s["results"][t["target"]] = {}
            for wl in s["workloads"]:
                fig, why = figures(s, t["target"], wl)
                per[wl["workload"]] = fig or {"value": None, "error": why}
                if why and why != "not run":
                    failed.append(f"{name}/{t['target']}/{wl['workload']}: {why}")
        s["comparisons"] = compare(s)
        s["rss_check"] = rss_rows(s)

    out = sys.stdout
    size = meta.get("size_bytes", 0) / 2**30
    rounds = meta.get("rounds", 1)
    print(f"netraid bench {meta.get('netraid') or '(netraid not built)'}: {size:g} GiB backing file, "
          f"{meta.get('fs')}, {meta.get('transport')} transport, {meta.get('runtime_s')} s per run "
          f"after {meta.get('ramp_s')} s ramp" + (f", median of {rounds} rounds" if rounds > 1 else "") +
          f", {meta.get('fio')}, {meta.get('cpus')} CPUs", file=out)
    other = other_cpu_pct(meta)
    meta["other_cpu_pct"] = other
    if other is not None and other > 10:
        print(f"warning: other processes and kernel threads used {other:.0f}% of the machine's CPU "
              f"during the run (load average {meta.get('load_start')} at start): these figures are noisy",
              file=out)
    for name, s in suites.items():
        print_suite(name, s, out)

    verdicts = [c["verdict"] for s in suites.values() for c in s["comparisons"] + s["rss_check"]]
    met = all(v != "TARGET MISSED" for v in verdicts) and bool(verdicts)
    doc = {"meta": meta, "targets_met": met, "failed_runs": failed, "suites": {}}
    for name, s in suites.items():
        doc["suites"][name] = {
            "title": s["title"], "subject": s.get("subject"),
            "workloads": s["workloads"],
            "targets": [dict(t, results=s["results"][t["target"]],
                             peak_rss_mib=s["rss"][t["target"]] / 1024 if t["target"] in s["rss"] else None)
                        for t in s["targets"]],
            "comparisons": s["comparisons"], "rss": s["rss_check"],
            "probes": s["probes"], "notes": s["notes"],
        }
    with open(sys.argv[2], "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\n{'all targets met' if met else 'TARGETS MISSED'}; results in {sys.argv[2]}", file=out)
    for f in failed:
        print(f"run failed: {f}", file=out)
    sys.exit(3 if failed else 0)


if __name__ == "__main__":
    main()
