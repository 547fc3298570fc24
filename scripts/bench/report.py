#!/usr/bin/env python3
"""report.py RESULTS.jsonl OUT.json: the benchmark's table and JSON.

RESULTS is the log bench.sh writes, one JSON object per line, by kind:
  meta      facts about the run (merged)
  suite     suite, title, subject, min_ratio_peer, rss_limit_mib;
            reference (optional): the role the verdicts compare with,
            "peer" (the best peer; the default) or "baseline";
            breakdown (optional): "ram=T disk=T hops=T", three targets
            from which each message's time is split (see breakdown)
  workload  suite, workload, desc, metric (MiB/s, kIOPS or msgs/s);
            min_ratio (optional): this workload's own minimum ratio to
            the reference; informative=1 (optional): ratios, no verdict;
            each_round=1 (optional, against the baseline): every round's
            ratio must meet the minimum, not only the median's;
            max_value (optional): the subject's median must be at most
            this (a time: lower is better), judged instead of a ratio
  target    suite, target, role (baseline | peer | subject | info), desc;
            copies (optional): a fio run wrote this many copies at once
            (one job per copy, group_reporting), and its figures are per
            copy: the totals divided by copies; versus (optional): another
            target of the suite this one is also judged against (TLS
            against plaintext), with versus_min_ratio, "WORKLOAD:RATIO"
            comma-separated (or one ratio for every workload): the
            minimum ratio to it, the workloads not named informative
  run       suite, target, workload, status, round, and either fio_json
            (fio's JSON output) or value (a figure measured some other
            way, in the workload's metric, with lat_p50_us, lat_p99_us,
            lat_mean_us if it has them); wall_s, server_cpu_s
  rss       suite, target, peak_rss_kib; daemon (optional) names one of
            several processes of the target (primary, secondary)
  probe     suite, anything: printed and kept
  stages    suite, target, daemon, round, ops, stages_json: a daemon's
            per-stage latency over a run (scripts/bench/latency.py's
            JSON); the last round's is printed
  note      suite, target?, text

For every subject (and, marked informative, every info target) it prints
the ratio to the best peer and to the baseline on every workload, and the
peak RSS of its processes against the limit, each with "target met" or
"TARGET MISSED"; for every target with a versus, its ratio to that target
on every workload, with a verdict where it has a minimum.
Exits 0 when every run completed (targets met or not), 3 when a run failed.
"""

import json
import sys

ROLES = ("baseline", "peer", "subject", "info")
# Latency figures a run measured some other way than fio may carry.
LAT_KEYS = ("lat_p50_us", "lat_p99_us", "lat_mean_us")


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
                "rss": {}, "probes": [], "notes": [], "stages": [],
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
                s["rss"].setdefault(rec["target"], []).append((rec.get("daemon"), rec["peak_rss_kib"]))
            elif kind == "probe":
                s["probes"].append(rec)
            elif kind == "stages":
                s["stages"].append(rec)
            elif kind == "note":
                s["notes"].append(rec)
    return meta, suites


def fio_figures(path, metric, copies=1):
    """The figures of a one-job fio run (or of a group-reported one, per
    copy), over both directions."""
    with open(path) as f:
        job = json.load(f)["jobs"][0]
    if job.get("error"):
        raise ValueError(f"fio job error {job['error']}")
    dirs = [job[d] for d in ("read", "write") if job[d]["io_bytes"] > 0]
    if not dirs:
        raise ValueError("fio did no I/O")
    bw = sum(d["bw_bytes"] for d in dirs) / copies
    iops = sum(d["iops"] for d in dirs) / copies
    lat = dirs[0]["clat_ns"]
    pct = lat.get("percentile", {})
    return {
        "value": bw / 2**20 if metric == "MiB/s" else iops / 1000,
        "bw_mib_s": bw / 2**20,
        "iops": iops,
        "lat_mean_us": lat["mean"] / 1000,
        "lat_p99_us": pct.get("99.000000", 0) / 1000,
    }


def one_run(run, metric, server, copies=1):
    """Figures of one run, or raises ValueError."""
    if run["status"] != "ok":
        raise ValueError(f"failed (see {run.get('error_log', 'log')})")
    try:
        if "value" in run:
            out = {"value": float(run["value"])}
            out.update({k: float(run[k]) for k in LAT_KEYS if k in run})
        else:
            out = fio_figures(run["fio_json"], metric, copies)
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
    copies = target_of(suite, target).get("copies", 1)
    try:
        got = [(r.get("round", 1), one_run(r, wl["metric"], server, copies)) for r in runs]
    except ValueError as e:
        return None, str(e)
    got.sort(key=lambda rf: rf[1]["value"])
    out = dict(got[(len(got) - 1) // 2][1])
    if len(got) > 1:
        out["rounds"] = [f["value"] for _, f in got]
        out["by_round"] = {str(r): f["value"] for r, f in got}
    return out, None


def target_of(suite, name):
    return next(t for t in suite["targets"] if t["target"] == name)


def target_role(suite, name):
    return target_of(suite, name)["role"]


def compare(suite):
    """Ratios and verdicts for the subject and info targets, against the
    best peer or against the baseline (the suite's reference)."""
    against = suite.get("reference", "peer")
    peers = [t["target"] for t in suite["targets"] if t["role"] == "peer"]
    base = next((t["target"] for t in suite["targets"] if t["role"] == "baseline"), None)
    res = suite["results"]
    rows = []
    for t in suite["targets"]:
        if t["role"] not in ("subject", "info"):
            continue
        for wl in suite["workloads"]:
            w = wl["workload"]
            need = float(wl.get("min_ratio", suite.get("min_ratio_peer", 1.0)))
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
                "reference": against, "min_ratio": need,
            }
            got = row["ratio_best_peer"] if against == "peer" else row["ratio_baseline"]
            if wl.get("each_round") and against == "baseline" and got is not None:
                # Every round's ratio must meet the need, not only the
                # median's: judge by the worst round.
                mine_r, base_r = res[t["target"]][w].get("by_round"), res[base][w].get("by_round")
                if mine_r and base_r:
                    per = {r: v / base_r[r] for r, v in mine_r.items() if base_r.get(r)}
                    row["ratio_baseline_by_round"] = per
                    got = min(per.values()) if len(per) == len(mine_r) else None
            if "max_value" in wl:
                row["min_ratio"], row["max_value"] = None, float(wl["max_value"])
                # Lower is better: compare the negations.
                got, need = (None if mine is None else -mine), -row["max_value"]
            if t["role"] == "info" or wl.get("informative"):
                row["verdict"] = "informative"
                row["min_ratio"] = None
            elif got is None:
                row["verdict"] = "TARGET MISSED" if mine is None else f"no {against} figure"
            else:
                row["verdict"] = "target met" if got >= need else "TARGET MISSED"
            rows.append(row)
    return rows


def breakdown(suite):
    """Where a message's time goes, per workload, from 1/rate (medians):
    the store's own (ram), the disk (disk less ram), the FUSE and NBD
    hops every NBD server pays (hops less ram), and what is left to each
    other server (its time less disk less hops). None without the
    suite's breakdown, "ram=T disk=T hops=T"."""
    spec = dict(kv.split("=", 1) for kv in (suite.get("breakdown") or "").split())
    if not {"ram", "disk", "hops"} <= spec.keys():
        return None
    res, rows = suite["results"], []
    per_msg = lambda t, w: (1000 / res[t][w]["value"]) if t in res and res[t][w]["value"] else None
    for wl in suite["workloads"]:
        w = wl["workload"]
        ram, disk, hops = (per_msg(spec[k], w) for k in ("ram", "disk", "hops"))
        row = {"workload": w, "store_ms": ram,
               "disk_ms": disk - ram if None not in (disk, ram) else None,
               "hops_ms": hops - ram if None not in (hops, ram) else None, "left_ms": {}}
        for t in suite["targets"]:
            if t["role"] == "baseline" or t["target"] in spec.values():
                continue
            mine = per_msg(t["target"], w)
            row["left_ms"][t["target"]] = (mine - disk - row["hops_ms"]
                                           if None not in (mine, disk, row["hops_ms"]) else None)
        rows.append(row)
    return {"of": spec, "rows": rows}


def print_breakdown(s, out):
    b = s.get("breakdown_rows")
    if not b:
        return
    names = list(b["rows"][0]["left_ms"]) if b["rows"] else []
    of = b["of"]
    print(f"\nwhere a message's time goes, ms (1/rate): the store ({of['ram']}), the disk ({of['disk']} - "
          f"{of['ram']}), the FUSE and NBD hops every server pays ({of['hops']} - {of['ram']}), "
          f"and what is left to each server (its time - {of['disk']} - hops)", file=out)
    rows = [["workload", "store", "disk", "hops"] + [f"left: {n}" for n in names]]
    for r in b["rows"]:
        rows.append([r["workload"], fmt(r["store_ms"], 2), fmt(r["disk_ms"], 2), fmt(r["hops_ms"], 2)] +
                    [fmt(r["left_ms"][n], 2) for n in names])
    table(rows, out)


def print_stages(s, out):
    """Each daemon's per-stage latency in the last round it was measured."""
    last = {}
    for rec in s["stages"]:
        key = (rec["target"], rec["daemon"])
        if key not in last or rec["round"] >= last[key]["round"]:
            last[key] = rec
    for (target, daemon), rec in last.items():
        try:
            with open(rec["stages_json"]) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        print(f"\nstages of {daemon} ({target}, round {rec['round']}, {rec['ops']} writes each with a flush): "
              "count per write, mean, median, p99 (us)", file=out)
        rows = [["stage", "count", "per write", "mean", "median", "p99"]]
        for st in doc["stages"]:
            rows.append([st["stage"], str(st["count"]), fmt(st["per_op"], 2), fmt(st["mean_us"]),
                         fmt(st["p50_us"]), fmt(st["p99_us"])])
        table(rows, out)


def parse_needs(spec, workloads):
    """versus_min_ratio as {workload: minimum ratio}."""
    if isinstance(spec, (int, float)):
        return {w["workload"]: float(spec) for w in workloads}
    needs = {}
    for item in filter(None, (spec or "").split(",")):
        w, sep, r = item.partition(":")
        if not sep:
            raise ValueError(f"versus_min_ratio: {item!r} is not WORKLOAD:RATIO")
        needs[w.strip()] = float(r)
    return needs


def versus_rows(suite):
    """Ratios and verdicts of the targets judged against another target of
    the same suite (versus), workload by workload."""
    res = suite["results"]
    rows = []
    for t in suite["targets"]:
        other = t.get("versus")
        if not other:
            continue
        needs = parse_needs(t.get("versus_min_ratio"), suite["workloads"])
        for wl in suite["workloads"]:
            w = wl["workload"]
            mine = res[t["target"]][w]["value"]
            theirs = (res.get(other) or {}).get(w, {}).get("value")
            r = mine / theirs if mine is not None and theirs else None
            need = needs.get(w)
            if need is None:
                verdict = "informative"
            elif r is None:
                verdict = "TARGET MISSED" if mine is None else f"no {other} figure"
            else:
                verdict = "target met" if r >= need else "TARGET MISSED"
            rows.append({"target": t["target"], "workload": w, "value": mine, "versus": other,
                         "versus_value": theirs, "ratio": r, "min_ratio": need, "verdict": verdict})
    return rows


def rss_rows(suite):
    """The peak RSS of every process of the subject and info targets
    against the limit; a subject without any figure misses it (an info
    target may share its subject's processes and have none)."""
    limit = suite.get("rss_limit_mib")
    rows = []
    for t in suite["targets"]:
        if t["role"] not in ("subject", "info") or not limit:
            continue
        if t["role"] == "info" and t["target"] not in suite["rss"]:
            continue
        for daemon, kib in suite["rss"].get(t["target"]) or [(None, None)]:
            mib = kib / 1024 if kib is not None else None
            verdict = "TARGET MISSED" if mib is None or mib >= limit else "target met"
            rows.append({"target": t["target"], "daemon": daemon, "peak_rss_mib": mib, "limit_mib": limit,
                         "verdict": verdict})
    return rows


def rss_cell(suite, name):
    """The table cell of a target's peak RSS: one figure per process."""
    got = suite["rss"].get(name)
    return "/".join(fmt(kib / 1024) for _, kib in got) if got else "-"


def target_doc(suite, t):
    """A target in the JSON: peak_rss_mib is the largest of its processes'
    and, where they are named, each is in peak_rss_mib_by_process."""
    doc = dict(t, results=suite["results"][t["target"]])
    got = suite["rss"].get(t["target"], [])
    doc["peak_rss_mib"] = max(kib for _, kib in got) / 1024 if got else None
    if any(d for d, _ in got):
        doc["peak_rss_mib_by_process"] = {d or "": kib / 1024 for d, kib in got}
    return doc


def ms(us):
    return None if us is None else us / 1000


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def need_cell(v):
    """A minimum ratio: at least one decimal, two where it has them."""
    if v is None:
        return "-"
    s = f"{v:.2f}"
    return f">= {s[:-1] if s.endswith('0') else s}x"


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
    if not names:
        for n in s["notes"]:
            print(f"note: {n.get('target', '')} {n['text']}".replace("  ", " "), file=out)
        return
    head = [["workload", "unit"] + names]
    body = []
    for wl in s["workloads"]:
        w = wl["workload"]
        body.append([wl["desc"], wl["metric"]] + [fmt(s["results"][n][w]["value"]) for n in names])
    for wl in s["workloads"]:
        w = wl["workload"]
        for key, what in (("lat_p50_us", "median latency"), ("lat_p99_us", "p99 latency")):
            if any(key in s["results"][n][w] for n in names):
                body.append([f"{wl['workload']}, {what}", "ms"] +
                            [fmt(ms(s["results"][n][w].get(key)), 2) for n in names])
    for wl in s["workloads"]:
        w = wl["workload"]
        body.append([f"server CPU, {wl['workload']}", "%core"] +
                    [fmt(s["results"][n][w].get("server_cpu_pct"), 0) for n in names])
    body.append(["peak RSS", "MiB"] + [rss_cell(s, n) for n in names])
    table(head + body, out, left=(0, 1))
    wide = max(14, *(len(n) for n in names))
    for t in s["targets"]:
        print(f"  {t['target']:<{wide}} {t['role']:<8} {t['desc']}", file=out)

    base = next((t["target"] for t in s["targets"] if t["role"] == "baseline"), "baseline")
    peers = any(t["role"] == "peer" for t in s["targets"])
    against = s.get("reference", "peer")
    rows = [["", "workload", "value"] + (["best peer", "", "vs peer"] if peers else []) +
            [f"vs {base}", "need", ""]]
    for c in s["comparisons"]:
        wl = next(w for w in s["workloads"] if w["workload"] == c["workload"])
        need = need_cell(c["min_ratio"]) if c.get("max_value") is None else f"<= {c['max_value']:g} {wl['metric']}"
        rows.append([c["target"], wl["desc"], fmt(c["value"])] +
                    ([fmt(c["best_peer_value"]), c["best_peer"] or "", ratio(c["ratio_best_peer"])] if peers else []) +
                    [ratio(c["ratio_baseline"]), need, c["verdict"]])
    for r in s["rss_check"]:
        who = f"{r['target']} ({r['daemon']})" if r["daemon"] else r["target"]
        rows.append([who, "peak RSS, MiB", fmt(r["peak_rss_mib"])] + (["", "", ""] if peers else []) +
                    ["", f"< {r['limit_mib']}", r["verdict"]])
    if len(rows) > 1:
        ref = "the best peer" if against == "peer" else base
        print(f"\ntargets: at least the ratio in \"need\" to {ref}; peak RSS under the limit", file=out)
        table(rows, out, left=(0, 1, 4, len(rows[0]) - 1) if peers else (0, 1, len(rows[0]) - 1))
    if s["versus"]:
        rows = [["", "workload", "value", "against", "value", "ratio", "need", ""]]
        for v in s["versus"]:
            wl = next(w for w in s["workloads"] if w["workload"] == v["workload"])
            rows.append([v["target"], wl["desc"], fmt(v["value"]), v["versus"], fmt(v["versus_value"]),
                         ratio(v["ratio"]), need_cell(v["min_ratio"]), v["verdict"]])
        print("\nagainst another target of this run: at least the ratio in \"need\"", file=out)
        table(rows, out, left=(0, 1, 3, 6, 7))
    print_breakdown(s, out)
    print_stages(s, out)
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
        s["versus"] = versus_rows(s)
        s["rss_check"] = rss_rows(s)
        s["breakdown_rows"] = breakdown(s)

    out = sys.stdout
    size = meta.get("size_bytes", 0) / 2**30
    rounds = meta.get("rounds", 1)
    print(f"netraid bench {meta.get('netraid') or '(netraid not built)'}: {size:g} GiB backing file, "
          f"{meta.get('fs')}, {meta.get('transport')} transport, {meta.get('runtime_s')} s per run "
          f"after {meta.get('ramp_s')} s ramp" + (f", median of {rounds} rounds" if rounds > 1 else "") +
          f", {meta.get('fio')}, {meta.get('cpus')} CPUs", file=out)
    if meta.get("raw_iomem"):
        print("raw fio's buffers are in huge pages, as netraid's large buffers are", file=out)
    elif meta.get("raw_iomem_why"):
        print(f"warning: raw fio's buffers are ordinary pages ({meta['raw_iomem_why']}): its 1 MiB requests "
              f"may go to the disk split in two, and read lower than the disk can", file=out)
    if meta.get("server_mem_mib"):
        print(f"every server runs in a memory cgroup of {meta['server_mem_mib']} MiB, page cache included",
              file=out)
    elif meta.get("server_mem_why"):
        print(f"warning: servers run without a memory limit ({meta['server_mem_why']}): "
              f"a server reading through the page cache may be measured serving from memory", file=out)
    other = other_cpu_pct(meta)
    meta["other_cpu_pct"] = other
    if other is not None and other > 10:
        print(f"warning: other processes and kernel threads used {other:.0f}% of the machine's CPU "
              f"during the run (load average {meta.get('load_start')} at start): these figures are noisy",
              file=out)
    for name, s in suites.items():
        print_suite(name, s, out)

    verdicts = [c["verdict"] for s in suites.values() for c in s["comparisons"] + s["versus"] + s["rss_check"]]
    met = all(v != "TARGET MISSED" for v in verdicts) and bool(verdicts)
    doc = {"meta": meta, "targets_met": met, "failed_runs": failed, "suites": {}}
    for name, s in suites.items():
        doc["suites"][name] = {
            "title": s["title"], "subject": s.get("subject"),
            "workloads": s["workloads"],
            "targets": [target_doc(s, t) for t in s["targets"]],
            "comparisons": s["comparisons"], "versus": s["versus"], "rss": s["rss_check"],
            "probes": s["probes"], "notes": s["notes"],
        }
        if s["breakdown_rows"]:
            doc["suites"][name]["breakdown"] = s["breakdown_rows"]
    with open(sys.argv[2], "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\n{'all targets met' if met else 'TARGETS MISSED'}; results in {sys.argv[2]}", file=out)
    for f in failed:
        print(f"run failed: {f}", file=out)
    sys.exit(3 if failed else 0)


if __name__ == "__main__":
    main()
