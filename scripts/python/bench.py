#!/usr/bin/env python3
"""The benchmarks of scripts/bench.sh (see there). Standard library only.

    bench.py --binary PATH --out FILE [--label TEXT] [--duration SECS] [--repeat N]
             [--only GROUP,...] [--chain-ns NS] [--bare-axum PATH] [--dynamodb-floor PATH]
             [--baseline PATH]

Starts the service (and its floors) on 127.0.0.1, drives them with oha, and writes a
Markdown report. Every load is bounded by --duration or a request count. The groups:

- matrix: the original matrix (throughput, p99, memory, start time), unpinned;
- flood: refusal floods, unpinned and pinned to one core;
- cost: server CPU per request with the server pinned to core 0 and its load (and moto)
  on core 1, side by side with its floor: `/gtg` against a bare axum server,
  `GET`/`POST /candidate` on DynamoDB (moto) against the SDK's own loop, `/computation`
  against the MD5 chain (criterion, pinned);
- writes: new names POSTed to SQLite by 16 connections, the service pinned to core 0;
- memory: resident memory idle and with 5,000 idle keep-alive connections;
- instructions: user-space instructions per request counted by valgrind's callgrind,
  `/gtg` against the bare axum server: stable where wall-clock time is not;
- probe: what the second adversarial probe measured (full listings, `/gtg?details`
  against writes, memory over slowloris bursts), on this build and on `--baseline`
  side by side (bench_probe.py).
"""

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from bench_probe import measure_probe, report as probe_report
from benchkit import (LOAD_CPU, SERVER_CPU, BareAxum, Service, cpu_cost, fmt, free_port, http_status,
                      machine, new_names_url, oha, pinned, rss_kib, under_load)

GROUPS = ("matrix", "flood", "cost", "writes", "memory", "instructions", "probe")
# Closed-loop clients of the refusal flood: each sends its next request as soon as it
# has the last answer, as the probe of the service's overload behaviour did.
FLOOD_CONNECTIONS = 200
# The seed of service/benches/computation.rs; URL-safe as it is.
CHAIN_SEED = "2026-11-22T12:00:00.123456789Z"
# Connections of the per-request cost runs (closed loop), and of the durable writes.
COST_CONNECTIONS = 64
STORE_CONNECTIONS = 16
WARM_UP_SECS = 5
WRITE_CONNECTIONS = 16
IDLE_CONNECTIONS = 5000
# Requests counted under callgrind: the difference of two runs removes the start-up.
CALLGRIND_REQUESTS = (1000, 3000)
# moto's table and the names the read benchmarks find there.
TABLE = "bench-candidates"
SEEDED_PREFIX, SEEDED = "bench-r-", 1000
AWS_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class Moto:
    """moto's server on core LOAD_CPU, with the candidates table as infra/ declares it
    and SEEDED names in it."""

    def __init__(self, floor):
        self.floor = floor

    def __enter__(self):
        moto = shutil.which("moto_server")
        if moto is None:
            raise SystemExit("ERROR: moto_server is not on PATH (scripts/bench.sh puts .tools/bin there)")
        self.data = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.data.name, "moto.log"), "w", encoding="utf-8")
        self.process = subprocess.Popen(
            [*pinned(LOAD_CPU), moto, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.perf_counter() + 60
        while http_status(f"{self.endpoint}/moto-api/") != 200:
            if time.perf_counter() > deadline or self.process.poll() is not None:
                self.__exit__()
                raise SystemExit("ERROR: moto did not start within 60 s")
            time.sleep(0.1)
        self.env = {**AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint}
        self.run_floor("create-table", TABLE)
        self.run_floor("seed", TABLE, SEEDED_PREFIX, str(SEEDED))
        return self

    def run_floor(self, *args, cpu=None):
        """The SDK loop (benches/dynamodb_floor.rs) against this moto; its JSON line."""
        env = {"PATH": os.environ.get("PATH", ""), **self.env}
        output = subprocess.run([*pinned(cpu), self.floor, *args], env=env, check=True,
                                capture_output=True, text=True).stdout
        lines = output.strip().splitlines()
        return json.loads(lines[-1]) if lines else {}

    def __exit__(self, *_):
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        self.data.cleanup()


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
            "--rand-regex-url", new_names_url(port),
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


def measure_cost(paths, duration, results):
    """Server CPU per request, pinned, each path beside its floor under the same load."""
    d = f"{duration}s"
    gtg = lambda base: oha("-z", d, "-c", str(COST_CONNECTIONS), f"{base}/gtg", cpu=LOAD_CPU)  # noqa: E731
    with Service(paths.binary, cpu=SERVER_CPU) as service:
        time.sleep(1)
        results["cost_gtg"] = cpu_cost(service.pid, lambda: gtg(service.base))
        # Default requests (50,000 iterations), one at a time, on the one worker.
        results["cost_computation"] = cpu_cost(service.pid, lambda: oha(
            "-n", "100", "-c", "1", f"{service.base}/computation?seed={CHAIN_SEED}", cpu=LOAD_CPU))
    with Moto(paths.dynamodb_floor) as moto:
        with Service(paths.binary, cpu=SERVER_CPU, store_env={
            **moto.env, "CANDIDATES_STORE": f"dynamodb://{TABLE}",
        }) as service:
            port = service.port
            # Warm-up: connections to moto opened, credentials resolved, and moto itself up to
            # speed. CPU per request here grows as the rate falls (a lightly loaded server pays
            # a wake-up per request), so a cold moto would count against whichever runs first.
            oha("-z", f"{WARM_UP_SECS}s", "-c", str(STORE_CONNECTIONS), f"{service.base}/candidate/{SEEDED_PREFIX}000", cpu=LOAD_CPU)
            results["cost_dynamodb_get"] = cpu_cost(service.pid, lambda: oha(
                "-z", d, "-c", str(STORE_CONNECTIONS),
                "--rand-regex-url", f"http://127[.]0[.]0[.]1:{port}/candidate/{SEEDED_PREFIX}[0-9]{{3}}",
                cpu=LOAD_CPU))
            results["cost_dynamodb_put"] = cpu_cost(service.pid, lambda: oha(
                "-z", d, "-c", str(STORE_CONNECTIONS), "-m", "POST",
                "--rand-regex-url", new_names_url(port),
                cpu=LOAD_CPU))
        for op, args in (("get", (TABLE, SEEDED_PREFIX, str(SEEDED))), ("put", (TABLE,))):
            floor = moto.run_floor(op, *args, str(STORE_CONNECTIONS), str(duration), cpu=SERVER_CPU)
            results[f"floor_dynamodb_{op}"] = {"cpu_us": floor["cpu_us_per_call"], "rps": floor["calls_per_s"]}
    with BareAxum(paths.bare_axum, cpu=SERVER_CPU) as bare:
        time.sleep(1)
        results["cost_bare"] = cpu_cost(bare.pid, lambda: gtg(bare.base))
        # moto answers a few hundred calls a second, so the service idles between requests
        # and each one pays the wake-ups of a lightly loaded server, which the SDK loop (no
        # server) never does. The bare server, held to the same rate and connections,
        # measures that part: the HTTP floor at the store's rate.
        for op in ("get", "put"):
            rate = max(1, round(results[f"cost_dynamodb_{op}"]["rps"]))
            results[f"bare_at_dynamodb_{op}_rate"] = cpu_cost(bare.pid, lambda: oha(
                "-z", d, "-c", str(STORE_CONNECTIONS), "-q", str(rate), f"{bare.base}/gtg", cpu=LOAD_CPU))


def measure_writes(paths, duration, results):
    """New names (never written before) POSTed by 16 connections to SQLite with
    synchronous=FULL, the service pinned: every acknowledged write is on disk."""
    with Service(paths.binary, cpu=SERVER_CPU) as service:
        port = service.port
        time.sleep(1)
        batches = service.metric("sqlite_write_batch_size_count") or 0
        inserts = service.metric("sqlite_write_batch_size_sum") or 0
        results["writes"] = cpu_cost(service.pid, lambda: oha(
            "-z", f"{duration}s", "-c", str(WRITE_CONNECTIONS), "-m", "POST",
            "--rand-regex-url", new_names_url(port),
            cpu=LOAD_CPU))
        batches = (service.metric("sqlite_write_batch_size_count") or 0) - batches
        inserts = (service.metric("sqlite_write_batch_size_sum") or 0) - inserts
        results["writes_per_commit"] = inserts / batches if batches else None


def open_idle_connections(port, count):
    """`count` keep-alive connections, each having had one `/gtg` answered, left open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.sendall(b"GET /gtg HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                raise SystemExit("ERROR: the service closed an idle-connection probe")
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"ERROR: /gtg answered {answer[:40]!r}")
        connections.append(connection)
    return connections


def measure_memory(paths, results):
    """Resident memory idle, then with IDLE_CONNECTIONS idle keep-alive connections."""
    with Service(paths.binary, overrides={"CANDIDATES_KEEPALIVE_TIMEOUT_SECS": "300"}) as service:
        time.sleep(1)
        idle = rss_kib(service.pid)
        connections = open_idle_connections(service.port, IDLE_CONNECTIONS)
        time.sleep(1)
        loaded = rss_kib(service.pid)
        for connection in connections:
            connection.close()
        time.sleep(2)
        results["memory_idle_mib"] = idle / 1024
        results["memory_connections_mib"] = loaded / 1024
        results["memory_per_connection_kib"] = (loaded - idle) / IDLE_CONNECTIONS
        results["memory_after_close_mib"] = rss_kib(service.pid) / 1024


def callgrind_instructions(make_server, requests):
    """User-space instructions a server executes for `requests` answers to `GET /gtg`
    (one connection, one at a time), start-up and shutdown included."""
    out = tempfile.NamedTemporaryFile(prefix="callgrind.", delete=False)
    out.close()
    try:
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}"]
        with make_server(wrapper) as server:
            oha("-n", str(requests), "-c", "1", f"{server.base}/gtg", cpu=LOAD_CPU)
        with open(out.name, encoding="utf-8") as profile:
            for line in profile:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
        raise SystemExit(f"ERROR: no totals in {out.name}")
    finally:
        os.unlink(out.name)


def measure_instructions(paths, results):
    """Instructions per `/gtg` request under callgrind: the difference of two runs of
    different lengths, so start-up and shutdown cancel out."""
    servers = {
        "instructions_gtg": lambda wrapper: Service(paths.binary, cpu=SERVER_CPU, wrapper=wrapper, ready_within=120),
        "instructions_bare": lambda wrapper: BareAxum(paths.bare_axum, cpu=SERVER_CPU, wrapper=wrapper, ready_within=120),
    }
    few, many = CALLGRIND_REQUESTS
    for key, make in servers.items():
        counts = [callgrind_instructions(make, n) for n in (few, many)]
        results[key] = (counts[1] - counts[0]) / (many - few)


def measure_once(paths, duration, workers, groups):
    """One pass of the chosen measurements, each against a freshly started server."""
    results = {}
    if "matrix" in groups:
        measure_matrix(paths.binary, duration, workers, results)
    if "flood" in groups:
        measure_flood(paths.binary, duration, workers, results)
    if "cost" in groups:
        measure_cost(paths, duration, results)
    if "writes" in groups:
        measure_writes(paths, duration, results)
    if "memory" in groups:
        measure_memory(paths, results)
    if "instructions" in groups:
        measure_instructions(paths, results)
    if "probe" in groups:
        measure_probe(paths.binary, paths.baseline, duration, results)
    return results


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def combine(runs):
    """The median of every number over the runs, and its range."""
    first = runs[0]
    combined, ranges = {}, {}
    for key, value in first.items():
        if isinstance(value, list):
            combined[key] = [median([r[key][i] for r in runs]) for i in range(len(value))]
            ranges[key] = None
        elif isinstance(value, dict):
            combined[key] = {k: median([r[key][k] for r in runs]) for k in value}
            ranges[key] = {k: (min(r[key][k] or 0 for r in runs), max(r[key][k] or 0 for r in runs)) for k in value}
        else:
            combined[key] = median([r[key] for r in runs])
            ranges[key] = (min(r[key] or 0 for r in runs), max(r[key] or 0 for r in runs))
    return combined, ranges


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--label", default="release")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="")
    parser.add_argument("--chain-ns", type=float, default=0.0)
    parser.add_argument("--bare-axum")
    parser.add_argument("--dynamodb-floor")
    parser.add_argument("--baseline")
    args = parser.parse_args(argv[1:])
    groups = [g for g in args.only.split(",") if g] or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise SystemExit(f"ERROR: unknown measurement group(s) {unknown}; known: {', '.join(GROUPS)}")
    pinned_groups = {"flood", "cost", "writes", "instructions", "probe"} & set(groups)
    if pinned_groups and (os.cpu_count() or 1) < 2:
        raise SystemExit(f"ERROR: {', '.join(sorted(pinned_groups))} pin the server and its load to two different cores; this machine has one")
    if {"cost", "instructions"} & set(groups) and not args.bare_axum:
        raise SystemExit("ERROR: cost and instructions need --bare-axum")
    if "cost" in groups and not args.dynamodb_floor:
        raise SystemExit("ERROR: cost needs --dynamodb-floor")
    workers = int(os.environ.get("CANDIDATES_COMPUTATION_WORKERS") or os.cpu_count() or 1)
    duration, repeat = args.duration, args.repeat
    m = machine()
    runs = []
    for attempt in range(repeat):
        print(f"NOTE: pass {attempt + 1} of {repeat}", file=sys.stderr)
        runs.append(measure_once(args, duration, workers, groups))
    results, ranges = combine(runs)
    load_after = os.getloadavg()[0]
    # Refusals are what the flood is made of: they are reported, not counted as failures.
    failed = {
        k: sum(r[k]["failed"] for r in runs)
        for k, v in runs[0].items()
        if isinstance(v, dict) and "failed" in v and not (k.endswith("flood") or k.endswith("flood_baseline"))
    }

    chain_ms = args.chain_ns / 1e6

    def value(key, metric=None):
        return results[key][metric] if metric else results[key]

    def cell(key, metric, unit, digits):
        """The median, and the range over the passes when there were several."""
        low, high = ranges[key][metric] if metric else ranges[key]
        spread = f" ({fmt(low, '', digits)}–{fmt(high, '', digits)})" if repeat > 1 else ""
        return f"{fmt(value(key, metric), unit, digits)}{spread}"

    def ratio(numerator, denominator):
        return None if not numerator or not denominator else numerator / denominator

    only = f" --only {','.join(groups)}" if sorted(groups) != sorted(GROUPS) else ""
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `scripts/bench.sh --repeat {repeat} --duration {duration}{only}` ({args.label} build, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}).",
        f"Each figure is the median of {repeat} passes, each against a freshly started",
        "server" + (", with the range in parentheses." if repeat > 1 else "."),
        "All traffic is on 127.0.0.1; oha drives the load from a second process. Pinned runs",
        f"put the server measured on core {SERVER_CPU} and the load generator (and moto) on core {LOAD_CPU}",
        "(`taskset`); CPU per request is the server's user + system time over its 2xx answers.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory']}; Linux {m['kernel']}",
        f"- {m['rustc']}; {m['oha']}",
        f"- Load average {m['load']:.1f} at the start, {load_after:.1f} at the end: "
        + ("other work shared the machine, so wall-clock figures (throughput, latency) are lower"
           " and noisier than on a quiet one; CPU per request and instruction counts much less so."
           if max(m["load"], load_after) > 1.0 else "a quiet machine."),
        "",
    ]
    if {"cost", "instructions", "writes", "memory"} & set(groups):
        lines += [
            "## Cost per request, side by side with the floors",
            "",
            "| path | service | floor | ratio | goal |",
            "|---|---|---|---|---|",
        ]
    if "cost" in groups:
        rows = (
            ("`GET /gtg`, access log on: server CPU per request", "cost_gtg", "bare axum hello (benches/bare_axum.rs)", "cost_bare", "≤ 1.3×"),
            ("`GET /candidate/{name}` on DynamoDB (moto): server CPU per request", "cost_dynamodb_get", "SDK `GetItem` loop, same client configuration (benches/dynamodb_floor.rs)", "floor_dynamodb_get", "≤ 1.3×"),
            ("`POST /candidate/{name}` (new names) on DynamoDB (moto): server CPU per request", "cost_dynamodb_put", "SDK `PutItem` loop, same client configuration", "floor_dynamodb_put", "≤ 1.3×"),
        )
        for what, key, floor_what, floor_key, goal in rows:
            lines.append(
                f"| {what} | {cell(key, 'cpu_us', ' µs', 2)} at {fmt(value(key, 'rps'), ' rps', 0)} | "
                f"{floor_what}: {cell(floor_key, 'cpu_us', ' µs', 2)} at {fmt(value(floor_key, 'rps'), ' rps', 0)} | "
                f"{fmt(ratio(value(key, 'cpu_us'), value(floor_key, 'cpu_us')), '×', 2)} | {goal} |"
            )
        for op, method in (("get", "GET"), ("put", "POST")):
            http = value(f"bare_at_dynamodb_{op}_rate", "cpu_us")
            sdk = value(f"floor_dynamodb_{op}", "cpu_us")
            both = http + sdk if http and sdk else None
            lines.append(
                f"| `{method} /candidate/{{name}}` on DynamoDB, against both floors at the store's rate | "
                f"{cell(f'cost_dynamodb_{op}', 'cpu_us', ' µs', 2)} | SDK loop + bare axum held to the same rate "
                f"({cell(f'bare_at_dynamodb_{op}_rate', 'cpu_us', ' µs', 2)}): {fmt(both, ' µs', 2)} | "
                f"{fmt(ratio(value(f'cost_dynamodb_{op}', 'cpu_us'), both), '×', 2)} | — |"
            )
        computation_ms = (value("cost_computation", "cpu_us") or 0) / 1000
        lines.append(
            f"| `GET /computation` (50,000 iterations), one at a time: server CPU per request | {cell('cost_computation', 'cpu_us', ' µs', 0)} | "
            f"MD5 chain alone, criterion, pinned: {fmt(chain_ms * 1000, ' µs', 0)} | {fmt(ratio(computation_ms, chain_ms), '×', 2)} | — |"
        )
    if "instructions" in groups:
        lines.append(
            f"| `GET /gtg`: user-space instructions per request (callgrind, one connection) | {cell('instructions_gtg', None, '', 0)} | "
            f"bare axum hello: {cell('instructions_bare', None, '', 0)} | "
            f"{fmt(ratio(value('instructions_gtg'), value('instructions_bare')), '×', 2)} | ≤ 1.3× |"
        )
    if "writes" in groups:
        lines += [
            f"| `POST /candidate/{{name}}` on SQLite, new names, {WRITE_CONNECTIONS} connections, one core: throughput | {cell('writes', 'rps', ' rps', 0)} | — | — | ≥ 10,000 rps |",
            f"| the same: p99 latency | {cell('writes', 'p99', ' ms', 2)} | — | — | < 10 ms |",
            f"| the same: writes per transaction (one fsync each) | {cell('writes_per_commit', None, '', 1)} | — | — | — |",
            f"| the same: server CPU per request | {cell('writes', 'cpu_us', ' µs', 1)} | — | — | — |",
        ]
    if "memory" in groups:
        lines += [
            f"| resident memory, idle | {cell('memory_idle_mib', None, ' MiB', 1)} | — | — | ≤ 20 MB |",
            f"| resident memory with {IDLE_CONNECTIONS:,} idle keep-alive connections | {cell('memory_connections_mib', None, ' MiB', 1)} | — | — | bounded |",
            f"| memory per idle keep-alive connection | {cell('memory_per_connection_kib', None, ' KiB', 1)} | — | — | — |",
            f"| resident memory once they closed | {cell('memory_after_close_mib', None, ' MiB', 1)} | — | — | — |",
        ]
    if {"cost", "instructions", "writes", "memory"} & set(groups):
        lines += [
            "",
            "Server CPU is measured under the same load for the service and its floor: "
            f"{COST_CONNECTIONS} closed-loop connections for `/gtg`, {STORE_CONNECTIONS} against moto "
            "(whose own speed sets the rate: it runs on the load core, so its CPU is not counted).",
            "The busy share of the server's core during each run, median: "
            + ", ".join(f"{k} {fmt(results[k]['busy'], ' %', 0)}" for k in results
                        if isinstance(results[k], dict) and results[k].get("busy") is not None)
            + ".",
            "",
        ]
    if {"matrix", "flood"} & set(groups):
        lines += ["## Throughput and latency (service unpinned)", "", "| measurement | result |", "|---|---|"]
    if "matrix" in groups:
        lines += [
            f"| `/gtg`, 64 connections: throughput | {cell('gtg', 'rps', ' rps', 0)} |",
            f"| `/gtg`, 64 connections: p99 | {cell('gtg', 'p99', ' ms', 2)} |",
            f"| `/gtg` at 200 rps while `/computation` saturates all {workers} workers: p99 | {cell('gtg_saturated', 'p99', ' ms', 2)} |",
            f"| `/computation` (50,000 iterations), one at a time: mean | {cell('computation_single', 'mean', ' ms', 2)} |",
            f"| pure chain, criterion (`cargo bench --bench computation`), pinned | {fmt(chain_ms, ' ms', 2)} |",
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
    if "probe" in groups:
        lines += probe_report(results, value, args.baseline is not None)
    lines += [
        "",
        "Requests not answered 2xx, over all passes: "
        + (", ".join(f"{k} {v}" for k, v in failed.items()) or "none measured") + ".",
        "",
    ]
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
