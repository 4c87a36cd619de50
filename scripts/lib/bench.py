#!/usr/bin/env python3
"""The local benchmark matrix of scripts/bench.sh (see there). Standard library only.

    bench.py BINARY CRITERION_NS DURATION_SECS OUT.md [LABEL [REPEAT [GROUPS]]]

Starts BINARY on SQLite in a temporary folder, drives it with oha from this (second)
process, all on 127.0.0.1, and writes a Markdown report. Every load is bounded by
DURATION_SECS or a request count. GROUPS (comma-separated, default all) picks which
measurements run: matrix (the original matrix), flood (refusal floods, unpinned and
pinned to one core each).
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
GROUPS = ("matrix", "flood")
# Closed-loop clients of the refusal flood: each sends its next request as soon as it
# has the last answer, as the probe of the service's overload behaviour did.
FLOOD_CONNECTIONS = 200
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


def oha(*args, cpu=None):
    """One bounded oha run (on core `cpu` when given); returns 2xx and other answers per
    second, p50/p99/mean latency in ms, and the count of requests not answered 2xx."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    output = subprocess.run(
        # -w: requests still in flight at the deadline finish instead of counting as errors.
        [*pin, OHA, "--no-tui", "--output-format", "json", "-t", "10s", "-w", *args],
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
        "other_rps": (total - ok) / seconds if seconds else 0.0,
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


class Service:
    """The binary on SQLite in a temporary folder, optionally pinned to one core."""

    def __init__(self, binary, overrides=None, cpu=None):
        self.binary, self.overrides, self.cpu = binary, overrides or {}, cpu

    def __enter__(self):
        self.data = tempfile.TemporaryDirectory()
        data = self.data.name
        port = free_port()
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "CANDIDATES_LOG_FORMAT": "json",
            "AWS_EC2_METADATA_DISABLED": "true",
            "CANDIDATES_INSTANCE_ID": "i-bench",
        }
        # Settings under comparison (pool sizes, RUST_LOG) come from the caller.
        env.update({k: v for k, v in os.environ.items() if k.startswith("CANDIDATES_") or k == "RUST_LOG"})
        env.update(self.overrides)
        # ... but never where it listens or what it writes to.
        env["CANDIDATES_LISTEN"] = f"127.0.0.1:{port}"
        env["CANDIDATES_STORE"] = f"sqlite://{data}/candidates.db"
        self.log = open(os.path.join(data, "service.log"), "w", encoding="utf-8")
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        started = time.perf_counter()
        self.process = subprocess.Popen([*pin, self.binary], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = started + 10
        while http_status(f"{self.base}/gtg") != 200:
            if time.perf_counter() > deadline or self.process.poll() is not None:
                self.__exit__(None, None, None)
                raise SystemExit("ERROR: the service did not answer /gtg within 10 s")
            time.sleep(0.001)
        self.start_ms = (time.perf_counter() - started) * 1000
        return self

    def __exit__(self, *_):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        self.data.cleanup()

    def log_lines(self):
        with open(os.path.join(self.data.name, "service.log"), encoding="utf-8") as log:
            return sum(1 for _ in log)


def under_load(load, probe, warmup=1):
    """Runs `load` (a long oha run) and, a second into it, `probe`; returns both."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(load)
        time.sleep(warmup)
        probed = probe()
        return loading.result(), probed


def measure_matrix(binary, duration, workers, results):
    d = f"{duration}s"
    with Service(binary) as service:
        base, port = service.base, service.port
        results["start_ms"] = service.start_ms
        time.sleep(1)
        results["idle_rss_mib"] = rss_kib(service.process.pid) / 1024

        results["gtg"] = oha("-z", d, "-c", "64", f"{base}/gtg")

        # Single computations, one at a time: the endpoint's overhead over the chain,
        # with the seed the criterion benchmark hashes (the seed's length sets the work).
        results["computation_single"] = oha(
            "-n", "30", "-c", "1", f"{base}/computation?seed={CHAIN_SEED}"
        )

        # Saturate every worker with /computation, and meanwhile probe /gtg.
        results["computation_saturated"], results["gtg_saturated"] = under_load(
            lambda: oha("-z", f"{duration + 2}s", "-c", str(workers * 4), f"{base}/computation?seed={CHAIN_SEED}"),
            lambda: oha("-z", d, "-c", "8", "-q", "200", f"{base}/gtg"),
        )

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
        results["busy_rss_mib"] = rss_kib(service.process.pid) / 1024


def measure_flood(binary, duration, workers, results):
    """Useful /computation throughput with the queue full and clients retrying at once,
    against the same service merely saturated; /gtg p99 meanwhile. Once with the
    default settings, once pinned: the service (one worker) on core 0, load on core 1."""
    d = f"{duration}s"
    url = f"/computation?seed={CHAIN_SEED}"
    for prefix, overrides, service_cpu, load_cpu, busy in (
        ("", {}, None, None, workers * 4),
        ("pinned_", {"CANDIDATES_COMPUTATION_WORKERS": "1"}, 0, 1, 4),
    ):
        with Service(binary, overrides, service_cpu) as service:
            base = service.base
            time.sleep(1)
            results[f"{prefix}flood_baseline"], results[f"{prefix}flood_baseline_gtg"] = under_load(
                lambda: oha("-z", f"{duration + 2}s", "-c", str(busy), base + url, cpu=load_cpu),
                lambda: oha("-z", d, "-c", "8", "-q", "200", f"{base}/gtg", cpu=load_cpu),
            )
            lines_before = service.log_lines()
            results[f"{prefix}flood"], results[f"{prefix}flood_gtg"] = under_load(
                lambda: oha("-z", f"{duration + 2}s", "-c", str(FLOOD_CONNECTIONS), base + url, cpu=load_cpu),
                lambda: oha("-z", d, "-c", "8", "-q", "200", f"{base}/gtg", cpu=load_cpu),
            )
            results[f"{prefix}flood_log_lines_per_s"] = (service.log_lines() - lines_before) / (duration + 2)
            baseline_rps = results[f"{prefix}flood_baseline"]["rps"]
            results[f"{prefix}flood_share"] = (
                100 * results[f"{prefix}flood"]["rps"] / baseline_rps if baseline_rps else None
            )


def measure_once(binary, duration, workers, groups):
    """One pass of the chosen measurements, each against a freshly started service."""
    results = {}
    if "matrix" in groups:
        measure_matrix(binary, duration, workers, results)
    if "flood" in groups:
        measure_flood(binary, duration, workers, results)
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
    groups = argv[7].split(",") if len(argv) > 7 and argv[7] else list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise SystemExit(f"ERROR: unknown measurement group(s) {unknown}; known: {', '.join(GROUPS)}")
    workers = int(os.environ.get("CANDIDATES_COMPUTATION_WORKERS") or os.cpu_count() or 1)
    runs = []
    for attempt in range(repeat):
        print(f"NOTE: pass {attempt + 1} of {repeat}", file=sys.stderr)
        runs.append(measure_once(binary, duration, workers, groups))
    results, ranges = combine(runs)
    # Refusals are what the flood is made of: they are reported, not counted as failures.
    failed = {
        k: sum(r[k]["failed"] for r in runs)
        for k, v in runs[0].items()
        if isinstance(v, dict) and not (k.endswith("flood") or k.endswith("flood_baseline"))
    }

    chain_ms = criterion_ns / 1e6
    m = machine()

    def cell(key, metric, unit, digits):
        """The median, and the range over the passes when there were several."""
        value = results[key][metric] if metric else results[key]
        low, high = ranges[key][metric] if metric else ranges[key]
        spread = f" ({fmt(low, '', digits)}–{fmt(high, '', digits)})" if repeat > 1 else ""
        return f"{fmt(value, unit, digits)}{spread}"

    only = f" --only {','.join(groups)}" if sorted(groups) != sorted(GROUPS) else ""
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `scripts/bench.sh --repeat {repeat} --duration {duration}{only}` ({label} build, "
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
    ]
    if "matrix" in groups:
        lines += [
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
        ]
    if "flood" in groups:
        for prefix, what, busy in (
            ("", f"{workers} workers, unpinned", workers * 4),
            ("pinned_", "1 worker, service on core 0, load on core 1", 4),
        ):
            lines += [
                f"| refusal flood ({what}): `/computation` with {busy} connections: throughput | {cell(prefix + 'flood_baseline', 'rps', ' rps', 1)} |",
                f"| refusal flood ({what}): with {FLOOD_CONNECTIONS} connections: throughput | {cell(prefix + 'flood', 'rps', ' rps', 1)} |",
                f"| refusal flood ({what}): share of the saturated throughput kept | {cell(prefix + 'flood_share', None, ' %', 0)} |",
                f"| refusal flood ({what}): 503s answered | {cell(prefix + 'flood', 'other_rps', ' per s', 0)} |",
                f"| refusal flood ({what}): `/gtg` p99 (200 rps) | {cell(prefix + 'flood_gtg', 'p99', ' ms', 2)} |",
                f"| refusal flood ({what}): log lines written | {cell(prefix + 'flood_log_lines_per_s', None, ' per s', 0)} |",
            ]
    lines += [
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
