#!/usr/bin/env python3
"""Turns oha's JSON summaries into the load test's CSV, verdict and chart.

    loadreport.py window  CSV ELAPSED TARGET_RATE DESIRED IN_SERVICE CPU [--seconds S] OHA_JSON...
        append one row (one time window) to CSV; several JSON files (the mixed profile
        runs a reader and a writer side by side) are merged into one row; with --seconds,
        the 2xx rate is over the window's S seconds (a --load-csv window that sent its
        requests and then waited), else over oha's own run time
    loadreport.py verdict CSV [--rps R] [--mean-ms M] [--success PCT]
        print the summary and the SLO verdict; exit 1 when a goal is missed (goals default
        to load-profiles.env's SLO_RPS, SLO_MEAN_MS, SLO_SUCCESS_PERCENT)
    loadreport.py chart   CSV PNG
        request rate, p50/p99 latency and capacity over time (needs matplotlib)

Success means a 2xx answer. oha counts any status as a success and exits 0 even when
no connection was ever made, so both are recomputed here from the status and error
distributions: a refused connection and a 503 are failures alike.
"""

import csv
import json
import os
import sys

# Reading the samples and drawing them are shared with the rehearsal (matplotlib is only
# imported when a chart is drawn).
import timechart

COLUMNS = [
    "elapsed_s",
    "target_rps",
    "requests",
    "ok_2xx",
    "failed",
    "rps",
    "mean_ms",
    "p50_ms",
    "p99_ms",
    "desired",
    "in_service",
    "cpu_percent",
]


def window_stats(summaries, seconds=None):
    """Merges oha summaries of one window into one set of numbers."""
    requests = ok = answered_total = 0
    rps = weighted_mean = 0.0
    p50 = p99 = None
    for report in summaries:
        statuses = report.get("statusCodeDistribution") or {}
        errors = report.get("errorDistribution") or {}
        answered = sum(int(n) for n in statuses.values())
        n_ok = sum(int(n) for code, n in statuses.items() if str(code).startswith("2"))
        attempts = answered + sum(int(n) for n in errors.values())
        requests += attempts
        answered_total += answered
        ok += n_ok
        summary = report.get("summary") or {}
        rps += n_ok / summary["total"] if summary.get("total") else 0.0
        mean = summary.get("average")
        if mean is not None and answered:
            weighted_mean += mean * 1000 * answered
        percentiles = report.get("latencyPercentiles") or {}
        # Across parts, report the worse value: a merged percentile would need the
        # raw samples, which oha does not give.
        if percentiles.get("p50") is not None:
            p50 = max(p50 or 0.0, percentiles["p50"] * 1000)
        if percentiles.get("p99") is not None:
            p99 = max(p99 or 0.0, percentiles["p99"] * 1000)
    mean_ms = weighted_mean / answered_total if answered_total else None
    if seconds:
        rps = ok / seconds
    return {
        "requests": requests,
        "ok_2xx": ok,
        "failed": requests - ok,
        "rps": round(rps, 2),
        "mean_ms": None if mean_ms is None else round(mean_ms, 3),
        "p50_ms": None if p50 is None else round(p50, 3),
        "p99_ms": None if p99 is None else round(p99, 3),
    }


def cmd_window(args):
    path, elapsed, target, desired, in_service, cpu, *json_files = args
    seconds = None
    if json_files[:1] == ["--seconds"]:
        seconds, json_files = float(json_files[1]), json_files[2:]
    summaries = []
    for name in json_files:
        with open(name, encoding="utf-8") as handle:
            summaries.append(json.load(handle))
    row = {"elapsed_s": elapsed, "target_rps": target}
    row.update(window_stats(summaries, seconds))
    row.update({"desired": desired, "in_service": in_service, "cpu_percent": cpu})
    write_header = True
    try:
        with open(path, encoding="utf-8") as handle:
            write_header = handle.read(1) == ""
    except FileNotFoundError:
        pass
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if write_header:
            writer.writeheader()
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})
    return 0


def read_rows(path):
    return timechart.read_rows(path, COLUMNS)


number = timechart.number

# The load profiles and the SLO defaults, defined once for loadtest.sh, this file and the
# rehearsal; the file lives with the bash helpers loadtest.sh sources (scripts/lib/).
PROFILES_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib", "load-profiles.env")


def load_profiles(path=PROFILES_FILE):
    """NAME=VALUE lines of load-profiles.env (comments and blank lines skipped)."""
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, value = line.partition("=")
            values[name] = value.strip('"')
    return values


def default_goals():
    """The SLO goals' defaults: --rps, --mean-ms, --success."""
    p = load_profiles()
    return {"--rps": float(p["SLO_RPS"]), "--mean-ms": float(p["SLO_MEAN_MS"]),
            "--success": float(p["SLO_SUCCESS_PERCENT"])}


def cmd_verdict(args):
    path = args[0]
    goals = default_goals()
    rest = args[1:]
    while rest:
        flag, value, *rest = rest
        if flag not in goals:
            raise SystemExit(f"ERROR: unknown goal {flag}")
        goals[flag] = float(value)
    rows = read_rows(path)
    requests = sum(int(r["requests"]) for r in rows)
    ok = sum(int(r["ok_2xx"]) for r in rows)
    answered_rows = [(number(r["mean_ms"]), int(r["ok_2xx"])) for r in rows if number(r["mean_ms"]) is not None]
    weight = sum(n for _, n in answered_rows)
    mean_ms = sum(m * n for m, n in answered_rows) / weight if weight else None
    peak_rps = max(number(r["rps"]) or 0.0 for r in rows)
    p99s = [number(r["p99_ms"]) for r in rows if number(r["p99_ms"]) is not None]
    success = 100.0 * ok / requests if requests else 0.0

    print(f"requests        {requests} ({ok} answered 2xx, {requests - ok} failed)")
    print(f"throughput      {peak_rps:.1f} rps of 2xx (best window)")
    print(f"mean latency    {'n/a' if mean_ms is None else f'{mean_ms:.2f} ms'}")
    print(f"worst p99       {'n/a' if not p99s else f'{max(p99s):.2f} ms'}")
    print(f"success         {success:.3f} %")
    checks = [
        ("throughput", peak_rps >= goals["--rps"], f">= {goals['--rps']:g} rps"),
        ("mean latency", mean_ms is not None and mean_ms < goals["--mean-ms"], f"< {goals['--mean-ms']:g} ms"),
        ("success", success >= goals["--success"], f">= {goals['--success']:g} % 2xx"),
    ]
    for name, met, goal in checks:
        print(f"{'✓' if met else '✗'} SLO {name} {goal} {'met' if met else 'missed'}")
    if all(met for _, met, _ in checks):
        print("SLO verdict: PASS")
        return 0
    print("SLO verdict: FAIL")
    return 1


def cmd_chart(args):
    path, out = args
    rows = read_rows(path)
    timechart.failed_per_second(rows, "elapsed_s")
    for r in rows:
        r["served"], r["target"] = r["rps"], r["target_rps"]
    run = timechart.series(rows, lambda r: number(r["elapsed_s"]), "")
    timechart.draw(out, "Load test: rate, latency and capacity over time", "seconds since start", [run],
                   no_capacity_text="no Auto Scaling group sampled (local target)")
    return 0


def main(argv):
    commands = {"window": cmd_window, "verdict": cmd_verdict, "chart": cmd_chart}
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[1]](argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
