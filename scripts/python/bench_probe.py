#!/usr/bin/env python3
"""The `probe` group of scripts/bench.sh: what the second adversarial probe of the service
measured, on this build and on a baseline build (`--baseline`, e.g. main's) side by side
in one run, the server pinned to core 0 and every client on core 1:

- full listings of 100,000 candidates: 20 and 60 at once (how many complete, how many
  are refused or cut off, and when the last ends); 150 clients listing in a loop while 16
  connections POST new names (the POSTs' throughput and latency, against the same POSTs
  alone);
- `GET /gtg?details`: its server CPU per call (32 connections, closed loop), and 16
  connections POSTing while 32 connections poll it at a fixed rate the baseline can
  sustain: the POSTs' throughput and p99 against the same POSTs alone, and how often the
  write probe failed (a healthy store reported degraded);
- resident memory over ten slowloris bursts of 3,000 connections (half-sent request
  heads, closed by the header timeout): the curve, once each burst is over;
- a store outage (the SQLite file's folder cannot be created): the bytes and lines of log
  written while 50 connections read names for 10 s;
- the same outage with a log reader that never reads (stdout a pipe nobody drains):
  how many `GET /gtg` probes, one every half second, are answered within 2 s.

Standard library only. Imported by bench.py; every load is bounded in count and time.
"""

import os
import resource
import socket
import sqlite3
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from benchkit import LOAD_CPU, SERVER_CPU, Service, cpu_cost, fmt, new_names_url, oha, rss_kib

LISTED = 100_000
AT_ONCE = (20, 60, 150)
LISTING_CLIENTS = 150
POST_CONNECTIONS = 16
DETAILS_CONNECTIONS = 32
# Polls of `/gtg?details` a second while the POSTs run: what the baseline answers.
DETAILS_RATE = 500
BURSTS, BURST_CONNECTIONS = 10, 3000
# Short enough for ten bursts to take a minute, long enough to open 3,000 connections.
BURST_HEADER_TIMEOUT_SECS = 3
OUTAGE_CONNECTIONS, OUTAGE_SECS = 50, 10
# `GET /gtg` probes of the stalled-log run: one every PROBE_EVERY, each given PROBE_WAIT.
PROBE_EVERY, PROBE_WAIT = 0.5, 2.0


def seed(service, count):
    """`count` names written straight into the service's SQLite file (its table exists
    once it has served one write)."""
    urllib.request.urlopen(urllib.request.Request(f"{service.base}/candidate/seed", method="POST"), timeout=10).read()
    db = sqlite3.connect(os.path.join(service.data.name, "candidates.db"), timeout=30)
    with db:
        db.executemany("INSERT OR IGNORE INTO candidates (name) VALUES (?)",
                       ((f"bench-l-{i:07d}",) for i in range(count)))
    db.close()


def full_listing(port):
    """One `GET /candidates` read to its end: its outcome and how long it took. Raw
    bytes, read and thrown away, so that 150 of these cost their client little: a
    listing is complete when its chunked body ends with the array's `]` and the last
    chunk; one cut off ends without them (the service closes the connection)."""
    started = time.perf_counter()
    buffer = bytearray(256 << 10)
    head, tail = b"", b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(b"GET /candidates HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            while True:
                read = connection.recv_into(buffer)
                if read == 0:
                    break
                if len(head) < 16:
                    head += bytes(buffer[:min(read, 16)])
                tail = (tail + bytes(buffer[max(0, read - 16):read]))[-16:]
        except OSError:
            pass
    status = head[9:12]
    if status == b"503":
        outcome = "refused"
    elif status == b"200":
        outcome = "complete" if tail.endswith(b"]\r\n0\r\n\r\n") else "cut_off"
    else:
        outcome = f"status {status!r}"
    return outcome, time.perf_counter() - started


def tally(outcomes):
    counts = {"complete": 0, "refused": 0, "cut_off": 0, "other": 0}
    for outcome in outcomes:
        counts[outcome if outcome in counts else "other"] += 1
    return counts


def listings_at_once(port, count):
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda _: full_listing(port), range(count)))
    counts = tally(outcome for outcome, _ in results)
    counts["last_s"] = max(seconds for _, seconds in results)
    return counts


def listing_clients(port, clients, until):
    """`clients` threads listing in a loop until `until`; a refused one waits its
    Retry-After (1 s), as a well-behaved client does."""
    def client():
        outcomes = []
        while time.perf_counter() < until:
            outcome, _ = full_listing(port)
            outcomes.append(outcome)
            if outcome == "refused":
                time.sleep(1)
        return outcomes
    with ThreadPoolExecutor(max_workers=clients) as pool:
        runs = list(pool.map(lambda _: client(), range(clients)))
    return tally(outcome for run in runs for outcome in run)


def posts(port, duration):
    return oha("-z", f"{duration}s", "-c", str(POST_CONNECTIONS), "-m", "POST",
               "--rand-regex-url", new_names_url(port), cpu=LOAD_CPU)


def measure_listings(binary, duration, results, key):
    with Service(binary, cpu=SERVER_CPU) as service:
        seed(service, LISTED)
        for count in AT_ONCE:
            results[f"{key}_listings_{count}"] = listings_at_once(service.port, count)
        results[f"{key}_posts_alone"] = posts(service.port, duration)
        with ThreadPoolExecutor(max_workers=1) as pool:
            until = time.perf_counter() + duration + 4
            clients = pool.submit(listing_clients, service.port, LISTING_CLIENTS, until)
            time.sleep(2)
            results[f"{key}_posts_listed"] = posts(service.port, duration)
            results[f"{key}_listing_clients"] = clients.result()


def metric(service, series):
    return service.metric(series) or 0


def measure_details(binary, duration, results, key):
    probe_failures = 'store_errors_total{backend="sqlite",operation="ping_write"}'
    with Service(binary, cpu=SERVER_CPU) as service:
        time.sleep(1)
        url = f"{service.base}/gtg?details"
        results[f"{key}_details_alone"] = cpu_cost(service.pid, lambda: oha(
            "-z", f"{duration}s", "-c", str(DETAILS_CONNECTIONS), url, cpu=LOAD_CPU))
        results[f"{key}_details_posts_alone"] = posts(service.port, duration)
        before = metric(service, probe_failures)
        with ThreadPoolExecutor(max_workers=1) as pool:
            polling = pool.submit(oha, "-z", f"{duration + 2}s", "-c", str(DETAILS_CONNECTIONS),
                                  "-q", str(DETAILS_RATE), url, cpu=LOAD_CPU)
            time.sleep(1)
            results[f"{key}_details_posts_polled"] = posts(service.port, duration)
            results[f"{key}_details_polls"] = polling.result()
        results[f"{key}_details_degraded"] = metric(service, probe_failures) - before


def slowloris_burst(port, count):
    """`count` connections that send half a request head and wait to be closed."""
    held = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=30)
        connection.sendall(b"GET /gtg HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        held.append(connection)
    deadline = time.perf_counter() + BURST_HEADER_TIMEOUT_SECS + 20
    for connection in held:
        connection.settimeout(max(0.1, deadline - time.perf_counter()))
        try:
            while connection.recv(4096):
                pass
        except OSError:
            pass
        connection.close()


def measure_memory_curve(binary, results, key):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < BURST_CONNECTIONS + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, BURST_CONNECTIONS + 1000), hard))
    overrides = {"CANDIDATES_HEADER_READ_TIMEOUT_SECS": str(BURST_HEADER_TIMEOUT_SECS)}
    with Service(binary, overrides=overrides, cpu=SERVER_CPU) as service:
        time.sleep(1)
        curve = [rss_kib(service.pid) / 1024]
        for _ in range(BURSTS):
            slowloris_burst(service.port, BURST_CONNECTIONS)
            # The service looks at its connections once a second: let it see the end.
            time.sleep(2)
            curve.append(rss_kib(service.pid) / 1024)
        results[f"{key}_memory_curve"] = curve


def down_store(folder):
    """A store that cannot open: its folder's name is taken by a file."""
    blocker = os.path.join(folder, "blocker")
    with open(blocker, "w", encoding="utf-8") as file:
        file.write("in the way")
    return {"CANDIDATES_STORE": f"sqlite://{blocker}/candidates.db"}


def outage_reads(port, seconds):
    return oha("-z", f"{seconds}s", "-c", str(OUTAGE_CONNECTIONS),
               "--rand-regex-url", f"http://127[.]0[.]0[.]1:{port}/candidate/down-[a-z0-9]{{8}}",
               cpu=LOAD_CPU)


def measure_outage_logs(binary, results, key):
    with tempfile.TemporaryDirectory() as folder, \
            Service(binary, cpu=SERVER_CPU, store_env=down_store(folder)) as service:
        time.sleep(1)
        bytes_before, lines_before = service.log_bytes(), service.log_lines()
        started = time.perf_counter()
        reads = outage_reads(service.port, OUTAGE_SECS)
        # The aggregated lines of the last second are written by the next flush.
        time.sleep(1.5)
        scale = 10 / (time.perf_counter() - started - 1.5)
        results[f"{key}_outage_logs"] = {
            "bytes_per_10s": (service.log_bytes() - bytes_before) * scale,
            "lines_per_10s": (service.log_lines() - lines_before) * scale,
            "failed_rps": reads["other_rps"],
        }


def gtg_within(port, wait):
    """Whether one `GET /gtg` is answered 200 within `wait` seconds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=wait) as connection:
            connection.sendall(b"GET /gtg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return connection.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def measure_stalled_log(binary, results, key):
    with tempfile.TemporaryDirectory() as folder, \
            Service(binary, cpu=SERVER_CPU, store_env=down_store(folder), stalled_log=True) as service:
        with ThreadPoolExecutor(max_workers=1) as pool:
            loading = pool.submit(outage_reads, service.port, OUTAGE_SECS)
            answered = probes = 0
            until = time.perf_counter() + OUTAGE_SECS
            while time.perf_counter() < until:
                started = time.perf_counter()
                probes += 1
                answered += gtg_within(service.port, PROBE_WAIT)
                time.sleep(max(0.0, PROBE_EVERY - (time.perf_counter() - started)))
            loading.result()
        results[f"{key}_stalled_log"] = {"probes": probes, "answered": answered}


def measure_probe(binary, baseline, duration, results):
    """Every measurement, on the baseline and on this build, clients on core 1."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {LOAD_CPU})
    try:
        for key, build in (("before", baseline), ("after", binary)):
            if build is None:
                continue
            measure_listings(build, duration, results, key)
            measure_details(build, duration, results, key)
            measure_memory_curve(build, results, key)
            measure_outage_logs(build, results, key)
            measure_stalled_log(build, results, key)
    finally:
        os.sched_setaffinity(0, previous)


def report(results, value, has_baseline):
    """The group's Markdown lines; `value(key, metric)` reads the median of the passes."""
    def both(render):
        after = render("after")
        return (render("before") if has_baseline else "not measured"), after

    def ratio(before, after):
        return fmt(after / before, "×", 2) if has_baseline and before and after else "—"

    def listing_cell(key, count):
        return (f"{fmt(value(f'{key}_listings_{count}', 'complete'), '', 0)} complete, "
                f"{fmt(value(f'{key}_listings_{count}', 'refused'), '', 0)} refused, "
                f"{fmt(value(f'{key}_listings_{count}', 'cut_off'), '', 0)} cut off; "
                f"the last after {fmt(value(f'{key}_listings_{count}', 'last_s'), ' s', 2)}")

    lines = [
        "## The second probe, before and after",
        "",
        "The baseline build and this one, side by side in one run; server on core "
        f"{SERVER_CPU}, every client on core {LOAD_CPU}. {LISTED:,} candidates for the listings.",
        "",
        "| measurement | before | after | after / before |",
        "|---|---|---|---|",
    ]
    for count in AT_ONCE:
        before, after = both(lambda key: listing_cell(key, count))
        lines.append(f"| {count} full listings at once | {before} | {after} | — |")
    for metric, what in (("p50", "p50"), ("p99", "p99")):
        for suffix, label in (("alone", "alone"), ("listed", f"with {LISTING_CLIENTS} clients listing")):
            before, after = both(lambda key: fmt(value(f"{key}_posts_{suffix}", metric), " ms", 2))
            lines.append(
                f"| POST new names ({POST_CONNECTIONS} connections) {label}: {what} | {before} | {after} | "
                f"{ratio(value('before_posts_' + suffix, metric) if has_baseline else None, value('after_posts_' + suffix, metric))} |")
    before, after = both(lambda key: fmt(value(f"{key}_posts_listed", "rps"), " rps", 0))
    lines.append(f"| the same with the listing clients: POST throughput | {before} | {after} | "
                 f"{ratio(value('before_posts_listed', 'rps') if has_baseline else None, value('after_posts_listed', 'rps'))} |")
    before, after = both(lambda key: (
        f"{fmt(value(f'{key}_listing_clients', 'complete'), '', 0)} complete, "
        f"{fmt(value(f'{key}_listing_clients', 'refused'), '', 0)} refused, "
        f"{fmt(value(f'{key}_listing_clients', 'cut_off'), '', 0)} cut off"))
    lines.append(f"| the {LISTING_CLIENTS} listing clients' listings meanwhile | {before} | {after} | — |")
    for metric, unit, digits, label in (("cpu_us", " µs", 1, "server CPU per call"), ("rps", " rps", 0, "throughput")):
        before, after = both(lambda key: fmt(value(f"{key}_details_alone", metric), unit, digits))
        lines.append(
            f"| `/gtg?details`, {DETAILS_CONNECTIONS} connections: {label} | {before} | {after} | "
            f"{ratio(value('before_details_alone', metric) if has_baseline else None, value('after_details_alone', metric))} |")
    for suffix, label in (("alone", "alone"), ("polled", f"while {DETAILS_CONNECTIONS} connections poll `/gtg?details` at {DETAILS_RATE}/s")):
        for metric, unit, digits in (("rps", " rps", 0), ("p99", " ms", 2)):
            before, after = both(lambda key: fmt(value(f"{key}_details_posts_{suffix}", metric), unit, digits))
            lines.append(
                f"| POST new names ({POST_CONNECTIONS} connections) {label}: {metric} | {before} | {after} | "
                f"{ratio(value('before_details_posts_' + suffix, metric) if has_baseline else None, value('after_details_posts_' + suffix, metric))} |")
    before, after = both(lambda key: fmt(value(f"{key}_details_polls", "rps"), " rps", 0))
    lines.append(f"| `/gtg?details` answered meanwhile | {before} | {after} | — |")
    before, after = both(lambda key: fmt(value(f"{key}_details_degraded"), "", 0))
    lines.append(f"| write probes failed meanwhile (a healthy store reported `degraded`) | {before} | {after} | — |")
    before, after = both(lambda key: fmt(value(f"{key}_outage_logs", "bytes_per_10s") / 1e3, " KB", 0))
    lines.append(f"| store down, {OUTAGE_CONNECTIONS} connections reading: log per 10 s | {before} | {after} | "
                 f"{ratio(value('before_outage_logs', 'bytes_per_10s') if has_baseline else None, value('after_outage_logs', 'bytes_per_10s'))} |")
    before, after = both(lambda key: fmt(value(f"{key}_outage_logs", "lines_per_10s"), " lines", 0))
    lines.append(f"| the same: log lines per 10 s | {before} | {after} | — |")
    before, after = both(lambda key: fmt(value(f"{key}_outage_logs", "failed_rps"), " rps", 0))
    lines.append(f"| the same: 503s answered a second | {before} | {after} | — |")
    before, after = both(lambda key: (f"{fmt(value(f'{key}_stalled_log', 'answered'), '', 0)} of "
                                      f"{fmt(value(f'{key}_stalled_log', 'probes'), '', 0)}"))
    lines.append(f"| the same with a log reader that never reads: `GET /gtg` answered within "
                 f"{PROBE_WAIT:g} s | {before} | {after} | — |")
    before, after = both(lambda key: " → ".join(fmt(mib, "", 0) for mib in value(f"{key}_memory_curve")) + " MiB")
    lines.append(f"| resident memory, idle then after each of {BURSTS} bursts of {BURST_CONNECTIONS:,} slowloris connections | {before} | {after} | — |")
    lines.append("")
    return lines
