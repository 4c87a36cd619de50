#!/usr/bin/env python3
"""The three-panel chart of a run over time, shared by the load test and the rehearsal so
that a prediction and a real run can be compared by eye:

    rate      2xx per second against the target (offered) rate, failed requests per second,
              and the rehearsal's clients' retries per second (--retries)
    latency   p50 and p99, on a log scale (a timeout does not flatten the rest); the mean
              instead for a run without percentiles (what rehearse.sh --load-from-cloudwatch
              reads of the load balancer)
    capacity  desired and in-service instances, min and max when known (schedules), the
              rehearsal's instances not answering (--fail, --fail-az), with the average CPU on
              a second axis (0-105 %, so a group pinned at 100 % shows)

    timechart.py rehearsal TIMELINE PNG [--compare SAMPLES] [--clock]
        the rehearsal's timeline.csv (scripts/rehearse.sh), with a real run's samples.csv
        (scripts/loadtest.sh) laid over it when given; --clock: clock time on the x axis
        (the timeline's own times: a week reads as days), else minutes since the start

loadreport.py draws the load test's chart with the same draw() (its `chart` command).
Needs matplotlib (the project's plot venv).
"""

import csv
import sys
from datetime import datetime, timedelta


def number(value):
    return float(value) if value not in ("", None) else None


def read_rows(path, columns):
    """The CSV's rows; stops with an ERROR naming the missing columns."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(columns) - set(reader.fieldnames or [])
        if missing:
            raise SystemExit(f"ERROR: {path} lacks columns {sorted(missing)}")
        rows = list(reader)
    if not rows:
        raise SystemExit(f"ERROR: {path} has no data rows")
    return rows


def series(rows, time_of, label, style="solid"):
    """One run as the chart draws it; each row describes the window that ends at its time."""
    return {
        "label": label,
        "style": style,
        "t": [time_of(r) for r in rows],
        "served": [number(r["served"]) for r in rows],
        "failed": [number(r.get("failed")) for r in rows],
        # The rehearsal's clients' retries and its instances that do not answer (--retries,
        # --fail, --fail-az); a load test's samples have neither.
        "retries": [number(r.get("retry_rps")) for r in rows],
        "not_answering": [number(r.get("not_answering")) for r in rows],
        "target": [number(r["target"]) or None for r in rows],
        "p50": [positive(number(r["p50_ms"])) for r in rows],
        "p99": [positive(number(r["p99_ms"])) for r in rows],
        "mean": [positive(number(r.get("mean_ms"))) for r in rows],
        "desired": [number(r["desired"]) for r in rows],
        "in_service": [number(r["in_service"]) for r in rows],
        "min": [number(r.get("min_size")) for r in rows],
        "max": [number(r.get("max_size")) for r in rows],
        "cpu": [number(r["cpu_percent"]) for r in rows],
    }


def positive(value):
    """A latency a log axis can draw (0 and missing are not)."""
    return value if value is not None and value > 0 else None


def failed_per_second(rows, elapsed_column):
    """loadtest.sh's failed requests of each window, per second of the window."""
    previous = 0.0
    for r in rows:
        end = number(r[elapsed_column]) or previous
        length = end - previous
        r["failed"] = int(r["failed"]) / length if length > 0 else None
        previous = end


def draw(out, title, xlabel, runs, no_capacity_text="no Auto Scaling group sampled"):
    """Draws `runs` (the first one solid, the others dotted over it) into `out`."""
    import matplotlib  # imported here: only drawing needs it

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_latency, ax_capacity) = plt.subplots(3, 1, sharex=True, figsize=(10, 9))
    ax_cpu = None
    any_capacity = False
    for run in runs:
        dotted = run["style"] != "solid"
        line = ":" if dotted else "-"
        suffix = f" ({run['label']})" if run["label"] else ""
        t = run["t"]
        ax_rate.step(t, run["served"], where="pre", label="2xx per second" + suffix, color="tab:blue",
                     linestyle=line, alpha=0.8 if dotted else 1.0)
        if any(v for v in run["failed"] if v is not None):
            ax_rate.step(t, run["failed"], where="pre", label="failed per second" + suffix, color="tab:red",
                         linestyle=line)
        if any(v for v in run["retries"] if v is not None):
            ax_rate.step(t, run["retries"], where="pre", label="retries per second" + suffix, color="tab:orange",
                         linestyle=line)
        if any(v is not None for v in run["target"]) and not dotted:
            ax_rate.step(t, run["target"], where="pre", linestyle="--", color="tab:gray", label="target rate" + suffix)
        if any(v is not None for v in run["p50"] + run["p99"]):
            ax_latency.plot(t, run["p50"], label="p50" + suffix, color="tab:green", linestyle=line)
            ax_latency.plot(t, run["p99"], label="p99" + suffix, color="tab:red", linestyle=line)
        elif any(v is not None for v in run["mean"]):
            ax_latency.plot(t, run["mean"], label="mean" + suffix, color="tab:olive", linestyle=line)
        if any(v is not None for v in run["desired"] + run["in_service"]):
            any_capacity = True
            ax_capacity.step(t, run["in_service"], where="pre", label="in service" + suffix, color="tab:orange",
                             linewidth=1.5 if dotted else 3, alpha=0.6, linestyle=line)
            ax_capacity.step(t, run["desired"], where="pre", label="desired" + suffix, color="tab:purple",
                             linestyle=":" if dotted else "--")
            if any(v for v in run["not_answering"] if v is not None):
                ax_capacity.step(t, run["not_answering"], where="pre", label="not answering" + suffix,
                                 color="tab:red", linestyle=line)
            if any(v is not None for v in run["min"]) and not dotted:
                ax_capacity.step(t, run["min"], where="pre", label="min / max", color="tab:gray", linewidth=1)
                ax_capacity.step(t, run["max"], where="pre", color="tab:gray", linewidth=1)
            if any(v is not None for v in run["cpu"]):
                if ax_cpu is None:
                    ax_cpu = ax_capacity.twinx()
                    ax_cpu.set_ylabel("CPU %")
                    ax_cpu.set_ylim(0, 105)
                ax_cpu.plot(t, run["cpu"], color="tab:brown", alpha=0.6, label="average CPU %" + suffix, linestyle=line)
    ax_rate.set_ylabel("requests / s")
    ax_rate.legend(loc="upper left")
    ax_rate.grid(alpha=0.3)
    ax_latency.set_ylabel("latency (ms, log)")
    if ax_latency.lines:
        ax_latency.set_yscale("log")
        ax_latency.legend(loc="upper left")
    ax_latency.grid(alpha=0.3, which="both")
    if any_capacity:
        ax_capacity.yaxis.get_major_locator().set_params(integer=True)
        ax_capacity.set_ylabel("instances")
        ax_capacity.legend(loc="upper left")
        if ax_cpu is not None:
            ax_cpu.legend(loc="upper right")
    else:
        ax_capacity.text(0.5, 0.5, no_capacity_text, ha="center", va="center", transform=ax_capacity.transAxes)
    ax_capacity.grid(alpha=0.3)
    ax_capacity.set_xlabel(xlabel)
    if runs and runs[0]["t"] and isinstance(runs[0]["t"][0], datetime):
        locator = mdates.AutoDateLocator()
        ax_capacity.xaxis.set_major_locator(locator)
        ax_capacity.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"NOTE: chart written to {out}", file=sys.stderr)


TIMELINE_COLUMNS = ["minute", "time", "offered_rps", "desired", "in_service", "cpu_percent", "served_rps",
                    "failed_rps", "p50_ms", "p99_ms", "min_size", "max_size"]
SAMPLES_COLUMNS = ["elapsed_s", "target_rps", "rps", "failed", "p50_ms", "p99_ms", "desired", "in_service",
                   "cpu_percent"]


def cmd_rehearsal(args):
    clock = "--clock" in args
    args = [a for a in args if a != "--clock"]
    if len(args) not in (2, 4) or (len(args) == 4 and args[2] != "--compare"):
        print(__doc__, file=sys.stderr)
        return 2
    timeline, out = args[0], args[1]
    rows = read_rows(timeline, TIMELINE_COLUMNS)
    for r in rows:
        r["served"], r["target"], r["failed"] = r["served_rps"], r["offered_rps"], r["failed_rps"]
    if clock:
        # Wall-clock times as the timeline writes them (each row in its own offset, so a
        # daylight-saving change shows as the clocks showed it).
        def wall(text):
            return datetime.fromisoformat(text).replace(tzinfo=None)

        start = wall(rows[0]["time"])
        predicted_time = lambda r: wall(r["time"]) + timedelta(minutes=1)  # noqa: E731
        real_time = lambda r: start + timedelta(seconds=number(r["elapsed_s"]))  # noqa: E731
        offset = datetime.fromisoformat(rows[0]["time"]).strftime("%z")
        xlabel = f"local time (UTC{offset[:3]}:{offset[3:]} at the start)"
    else:
        predicted_time = lambda r: number(r["minute"]) + 1  # noqa: E731
        real_time = lambda r: number(r["elapsed_s"]) / 60  # noqa: E731
        xlabel = "minutes since start"
    runs = [series(rows, predicted_time, "predicted" if len(args) == 4 else "")]
    title = "Rehearsal: predicted rate, latency and capacity over time"
    if len(args) == 4:
        real = read_rows(args[3], SAMPLES_COLUMNS)
        failed_per_second(real, "elapsed_s")
        for r in real:
            r["served"], r["target"] = r["rps"], r["target_rps"]
        runs.append(series(real, real_time, "real run", style="dotted"))
        title = "Rehearsal (solid) and a real run (dotted): rate, latency and capacity"
    draw(out, title, xlabel, runs)
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] != "rehearsal":
        print(__doc__, file=sys.stderr)
        return 2
    return cmd_rehearsal(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
