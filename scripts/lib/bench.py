#!/usr/bin/env python3
"""The local benchmark matrix of scripts/bench.sh (see there). Standard library only.

    bench.py BINARY CRITERION_NS DURATION_SECS OUT.md [LABEL [REPEAT]]

Starts BINARY on SQLite in a temporary folder, drives it with oha from this (second)
process, all on 127.0.0.1, and writes a Markdown report. Every load is bounded by
DURATION_SECS or a request count.
"""

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

OHA = os.environ.get("OHA", "oha")
# The seed of service/benches/computation.rs; URL-safe as it is.
CHAIN_SEED = "2026-11-22T12:00:00.123456789Z"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url, method="GET"):
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def oha(*args):
    """One bounded oha run; returns (2xx per second, p50 ms, p99 ms, mean ms, non-2xx)."""
    output = subprocess.run(
        # -w: requests still in flight at the deadline finish instead of counting as errors.
        [OHA, "--no-tui", "--output-format", "json", "-t", "10s", "-w", *args],
        check=True, capture_output=True, text=True,
    ).stdout
    report = json.loads(output)
    statuses = report.get("statusCodeDistribution") or {}
    errors = sum((report.get("errorDistribution") or {}).values())
    ok = sum(n for code, n in statuses.items() if code.startswith("2"))
    total = sum(statuses.values()) + errors
    seconds = report["summary"]["total"]
    percentiles = report.get("latencyPercentiles") or {}
    ms = lambda v: None if v is None else v * 1000  # noqa: E731
    return {
        "rps": ok / seconds if seconds else 0.0,
        "p50": ms(percentiles.get("p50")),
        "p99": ms(percentiles.get("p99")),
        "mean": ms(report["summary"].get("average")),
        "failed": total - ok,
    }


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(l.split(":", 1)[1].strip() for l in info if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": f"{mem_gib:.0f} GiB",
        "kernel": platform.release(),
        "rustc": rustc,
        "oha": subprocess.run([OHA, "--version"], capture_output=True, text=True).stdout.strip(),
    }


def fmt(value, unit="", digits=1):
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def measure_once(binary, duration, workers):
    """One pass of the matrix against a freshly started service."""
    d = f"{duration}s"
    results = {}
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "CANDIDATES_LOG_FORMAT": "json",
            "AWS_EC2_METADATA_DISABLED": "true",
            "CANDIDATES_INSTANCE_ID": "i-bench",
        }
        # Settings under comparison (pool sizes, RUST_LOG) come from the caller.
        env.update({k: v for k, v in os.environ.items() if k.startswith("CANDIDATES_") or k == "RUST_LOG"})
        # ... but never where it listens or what it writes to.
        env["CANDIDATES_LISTEN"] = f"127.0.0.1:{port}"
        env["CANDIDATES_STORE"] = f"sqlite://{data}/candidates.db"
        log = open(os.path.join(data, "service.log"), "w", encoding="utf-8")
        started = time.perf_counter()
        service = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = started + 10
            while http_status(f"{base}/gtg") != 200:
                if time.perf_counter() > deadline or service.poll() is not None:
                    raise SystemExit("ERROR: the service did not answer /gtg within 10 s")
                time.sleep(0.001)
            results["start_ms"] = (time.perf_counter() - started) * 1000
            time.sleep(1)
            results["idle_rss_mib"] = rss_kib(service.pid) / 1024

            results["gtg"] = oha("-z", d, "-c", "64", f"{base}/gtg")

            # Single computations, one at a time: the endpoint's overhead over the chain,
            # with the seed the criterion benchmark hashes (the seed's length sets the work).
            results["computation_single"] = oha(
                "-n", "30", "-c", "1", f"{base}/computation?seed={CHAIN_SEED}"
            )

            # Saturate every worker with /computation, and meanwhile probe /gtg.
            with ThreadPoolExecutor(max_workers=1) as pool:
                saturating = pool.submit(
                    oha, "-z", f"{duration + 2}s", "-c", str(workers * 4),
                    f"{base}/computation?seed={CHAIN_SEED}",
                )
                time.sleep(1)
                results["gtg_saturated"] = oha("-z", d, "-c", "8", "-q", "200", f"{base}/gtg")
                results["computation_saturated"] = saturating.result()

            results["write"] = oha(
                "-z", d, "-c", "64", "-m", "POST",
                "--rand-regex-url", f"http://127[.]0[.]0[.]1:{port}/candidate/bench-w-[a-z0-9]{{12}}",
            )
            for i in range(1000):
                status = http_status(f"{base}/candidate/bench-r-{i:03d}", "POST")
                if status != 200:
                    raise SystemExit(f"ERROR: seeding failed with {status}")
            results["read"] = oha(
                "-z", d, "-c", "64",
                "--rand-regex-url", f"http://127[.]0[.]0[.]1:{port}/candidate/bench-r-[0-9]{{3}}",
            )
            results["busy_rss_mib"] = rss_kib(service.pid) / 1024
        finally:
            service.terminate()
            service.wait(timeout=30)
            log.close()

    return results


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def combine(runs):
    """The median of every number over the runs, and its range."""
    first = runs[0]
    combined, ranges = {}, {}
    for key, value in first.items():
        if isinstance(value, dict):
            combined[key] = {k: median([r[key][k] for r in runs]) for k in value}
            ranges[key] = {k: (min(r[key][k] or 0 for r in runs), max(r[key][k] or 0 for r in runs)) for k in value}
        else:
            combined[key] = median([r[key] for r in runs])
            ranges[key] = (min(r[key] for r in runs), max(r[key] for r in runs))
    return combined, ranges


def main(argv):
    binary, criterion_ns, duration, out = argv[1], float(argv[2]), int(argv[3]), argv[4]
    label = argv[5] if len(argv) > 5 else "release"
    repeat = int(argv[6]) if len(argv) > 6 else 1
    workers = int(os.environ.get("CANDIDATES_COMPUTATION_WORKERS") or os.cpu_count() or 1)
    runs = []
    for attempt in range(repeat):
        print(f"NOTE: pass {attempt + 1} of {repeat}", file=sys.stderr)
        runs.append(measure_once(binary, duration, workers))
    results, ranges = combine(runs)
    failed = {k: sum(r[k]["failed"] for r in runs) for k, v in runs[0].items() if isinstance(v, dict)}

    chain_ms = criterion_ns / 1e6
    m = machine()
    g, gs, cs, cc = results["gtg"], results["gtg_saturated"], results["computation_single"], results["computation_saturated"]
    w, r = results["write"], results["read"]
    def cell(key, metric, unit, digits):
        """The median, and the range over the passes when there were several."""
        value = results[key][metric] if metric else results[key]
        low, high = ranges[key][metric] if metric else ranges[key]
        spread = f" ({fmt(low, '', digits)}–{fmt(high, '', digits)})" if repeat > 1 else ""
        return f"{fmt(value, unit, digits)}{spread}"

    lines = [
        "# Benchmarks",
        "",
        f"Produced by `scripts/bench.sh --repeat {repeat} --duration {duration}` ({label} build, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}).",
        "The service runs on SQLite in a temporary folder with its default settings; oha runs",
        f"from a second process on the same machine, over 127.0.0.1, {duration} s per load run.",
        "Both share the CPU, so these are the numbers of one small box, not of a fleet.",
        f"Each figure is the median of {repeat} passes, each against a freshly started",
        "service" + (", with the range in parentheses." if repeat > 1 else "."),
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory']}; Linux {m['kernel']}",
        f"- {m['rustc']}; {m['oha']}",
        "",
        "## Results",
        "",
        "| measurement | result |",
        "|---|---|",
        f"| `/gtg`, 64 connections: throughput | {cell('gtg', 'rps', ' rps', 0)} |",
        f"| `/gtg`, 64 connections: p99 | {cell('gtg', 'p99', ' ms', 2)} |",
        f"| `/gtg` at 200 rps while `/computation` saturates all {workers} workers: p99 | {cell('gtg_saturated', 'p99', ' ms', 2)} |",
        f"| `/computation` (50,000 iterations), one at a time: mean | {cell('computation_single', 'mean', ' ms', 2)} |",
        f"| pure chain, criterion (`cargo bench --bench computation`) | {fmt(chain_ms, ' ms', 2)} |",
        f"| `/computation` saturated ({workers * 4} connections, {workers} workers): throughput | {cell('computation_saturated', 'rps', ' rps', 1)} |",
        f"| `POST /candidate/{{name}}`, 64 connections: throughput | {cell('write', 'rps', ' rps', 0)} |",
        f"| `POST /candidate/{{name}}`, 64 connections: p99 | {cell('write', 'p99', ' ms', 2)} |",
        f"| `GET /candidate/{{name}}` (1,000 names), 64 connections: throughput | {cell('read', 'rps', ' rps', 0)} |",
        f"| `GET /candidate/{{name}}` (1,000 names), 64 connections: p99 | {cell('read', 'p99', ' ms', 2)} |",
        f"| resident memory, idle | {cell('idle_rss_mib', None, ' MiB', 1)} |",
        f"| resident memory after the runs | {cell('busy_rss_mib', None, ' MiB', 1)} |",
        f"| start to first `200` on `/gtg` | {cell('start_ms', None, ' ms', 1)} |",
        "",
        "Requests not answered 2xx, over all passes: "
        + ", ".join(f"{k} {v}" for k, v in failed.items()) + ".",
        "",
    ]
    with open(out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
