#!/usr/bin/env python3
"""What every benchmark of scripts/bench.sh is made of: bounded oha runs, a server process
on 127.0.0.1 (pinned to a core when asked), the service on a fresh SQLite file, its CPU
time and resident memory. Standard library only; bench.py and bench_probe.py import it.
"""

import json
import os
import platform
import socket
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

OHA = os.environ.get("OHA", "oha")
# Pinned runs: the server measured on one core, everything else on the other.
SERVER_CPU, LOAD_CPU = 0, 1


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


def pinned(cpu):
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def oha(*args, cpu=None):
    """One bounded oha run (on core `cpu` when given); returns 2xx and other answers per
    second, their count, p50/p99/mean latency in ms, and the count not answered 2xx."""
    output = subprocess.run(
        # -w: requests still in flight at the deadline finish instead of counting as errors.
        [*pinned(cpu), OHA, "--no-tui", "--output-format", "json", "-t", "10s", "-w", *args],
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
        "ok": ok,
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


def cpu_seconds(pid):
    """User and system CPU time of a process and all its threads."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        text = stat.read()
    # The command name may hold spaces: fields are counted after its closing ')'.
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_cost(pid, run):
    """Runs `run` (an oha run) and adds the server's CPU time per 2xx answer, in µs, and
    the share of its core it used meanwhile."""
    before, started = cpu_seconds(pid), time.perf_counter()
    result = run()
    used, wall = cpu_seconds(pid) - before, time.perf_counter() - started
    result["cpu_us"] = used * 1e6 / result["ok"] if result["ok"] else None
    result["busy"] = 100 * used / wall
    return result


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
        "load": os.getloadavg()[0],
    }


def fmt(value, unit="", digits=1):
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


class Server:
    """A server process on 127.0.0.1, optionally pinned to one core (or under another
    command, such as valgrind), ready once `GET /gtg` answers 200."""

    def __init__(self, command, env=None, cpu=None, wrapper=(), ready_within=10, stalled_log=False):
        self.command, self.env, self.cpu = command, env, cpu
        self.wrapper, self.ready_within = list(wrapper), ready_within
        # A log reader that never reads: stdout is a pipe nobody drains.
        self.stalled_log = stalled_log

    def start(self, port, data):
        self.port, self.base = port, f"http://127.0.0.1:{port}"
        self.log = open(os.path.join(data, "server.log"), "w", encoding="utf-8")
        started = time.perf_counter()
        output = subprocess.PIPE if self.stalled_log else self.log
        self.process = subprocess.Popen(
            [*pinned(self.cpu), *self.wrapper, *self.command],
            env=self.env, stdout=output, stderr=subprocess.STDOUT,
        )
        deadline = started + self.ready_within
        while http_status(f"{self.base}/gtg") != 200:
            if time.perf_counter() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit(f"ERROR: {self.command[0]} did not answer /gtg within {self.ready_within} s")
            time.sleep(0.001)
        self.start_ms = (time.perf_counter() - started) * 1000
        self.pid = self.process.pid

    def stop(self):
        if self.stalled_log:
            # A server waiting on its log would wait through its shutdown too: closing
            # the reader's end makes its writes fail instead.
            self.process.stdout.close()
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


class Service(Server):
    """The binary on SQLite in a temporary folder (or on another store)."""

    def __init__(self, binary, overrides=None, cpu=None, store_env=None, wrapper=(), ready_within=10,
                 stalled_log=False):
        super().__init__([binary], cpu=cpu, wrapper=wrapper, ready_within=ready_within,
                         stalled_log=stalled_log)
        self.overrides, self.store_env = overrides or {}, store_env

    def __enter__(self):
        self.data = tempfile.TemporaryDirectory()
        port = free_port()
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
        env["CANDIDATES_STORE"] = f"sqlite://{self.data.name}/candidates.db"
        env.update(self.store_env or {})
        self.env = env
        try:
            self.start(port, self.data.name)
        except BaseException:
            self.data.cleanup()
            raise
        return self

    def __exit__(self, *_):
        self.stop()
        self.data.cleanup()

    def log_bytes(self):
        return os.path.getsize(os.path.join(self.data.name, "server.log"))

    def log_lines(self):
        with open(os.path.join(self.data.name, "server.log"), encoding="utf-8") as log:
            return sum(1 for _ in log)

    def metric(self, series):
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(series + " "):
                    return float(line.split()[1])
        return None


class BareAxum(Server):
    """The floor of every request: benches/bare_axum.rs."""

    def __init__(self, binary, cpu=None, wrapper=(), ready_within=10):
        super().__init__([binary], env={"PATH": os.environ.get("PATH", "")}, cpu=cpu,
                         wrapper=wrapper, ready_within=ready_within)

    def __enter__(self):
        self.data = tempfile.TemporaryDirectory()
        port = free_port()
        self.command = [self.command[0], f"127.0.0.1:{port}"]
        self.start(port, self.data.name)
        return self

    def __exit__(self, *_):
        self.stop()
        self.data.cleanup()


def under_load(load, probe, warmup=1):
    """Runs `load` (a long oha run) and, a second into it, `probe`; returns both."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(load)
        time.sleep(warmup)
        probed = probe()
        return loading.result(), probed


def new_names_url(port):
    """oha's --rand-regex-url for POSTs of names never written before (dots in brackets:
    the whole URL is a pattern)."""
    return f"http://127[.]0[.]0[.]1:{port}/candidate/bench-w-[a-z0-9]{{12}}"
