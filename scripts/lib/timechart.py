#!/usr/bin/env python3
"""The three-panel chart of a run over time, shared by the load test and the rehearsal so
that a prediction and a real run can be compared by eye:

    rate      2xx per second against the target (offered) rate
    latency   p50 and p99
    capacity  desired and in-service instances, with the average CPU on a second axis

    timechart.py rehearsal TIMELINE PNG [--compare SAMPLES]
        the rehearsal's timeline.csv (scripts/rehearse.sh), with a real run's samples.csv
        (scripts/loadtest.sh) laid over it when given

loadreport.py draws the load test's chart with the same draw() (its `chart` command).
Needs matplotlib (the project's plot venv).
"""

import csv
import sys


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
        "target": [number(r["target"]) or None for r in rows],
        "p50": [number(r["p50_ms"]) for r in rows],
        "p99": [number(r["p99_ms"]) for r in rows],
        "desired": [number(r["desired"]) for r in rows],
        "in_service": [number(r["in_service"]) for r in rows],
        "cpu": [number(r["cpu_percent"]) for r in rows],
    }


def draw(out, title, xlabel, runs, no_capacity_text="no Auto Scaling group sampled"):
    """Draws `runs` (the first one solid, the others dotted over it) into `out`."""
    import matplotlib  # imported here: only drawing needs it

    matplotlib.use("Agg")
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
        if any(v is not None for v in run["target"]) and not dotted:
            ax_rate.step(t, run["target"], where="pre", linestyle="--", color="tab:gray", label="target rate" + suffix)
        ax_latency.plot(t, run["p50"], label="p50" + suffix, color="tab:green", linestyle=line)
        ax_latency.plot(t, run["p99"], label="p99" + suffix, color="tab:red", linestyle=line)
        if any(v is not None for v in run["desired"] + run["in_service"]):
            any_capacity = True
            ax_capacity.step(t, run["in_service"], where="pre", label="in service" + suffix, color="tab:orange",
                             linewidth=1.5 if dotted else 3, alpha=0.6, linestyle=line)
            ax_capacity.step(t, run["desired"], where="pre", label="desired" + suffix, color="tab:purple",
                             linestyle=":" if dotted else "--")
            if any(v is not None for v in run["cpu"]):
                if ax_cpu is None:
                    ax_cpu = ax_capacity.twinx()
                    ax_cpu.set_ylabel("CPU %")
                    ax_cpu.set_ylim(0, 100)
                ax_cpu.plot(t, run["cpu"], color="tab:brown", alpha=0.6, label="average CPU %" + suffix, linestyle=line)
    ax_rate.set_ylabel("requests / s")
    ax_rate.legend(loc="upper left")
    ax_rate.grid(alpha=0.3)
    ax_latency.set_ylabel("latency (ms)")
    ax_latency.legend(loc="upper left")
    ax_latency.grid(alpha=0.3)
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
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"NOTE: chart written to {out}", file=sys.stderr)


TIMELINE_COLUMNS = ["minute", "offered_rps", "desired", "in_service", "cpu_percent", "served_rps", "p50_ms", "p99_ms"]
SAMPLES_COLUMNS = ["elapsed_s", "target_rps", "rps", "p50_ms", "p99_ms", "desired", "in_service", "cpu_percent"]


def cmd_rehearsal(args):
    if len(args) not in (2, 4) or (len(args) == 4 and args[2] != "--compare"):
        print(__doc__, file=sys.stderr)
        return 2
    timeline, out = args[0], args[1]
    rows = read_rows(timeline, TIMELINE_COLUMNS)
    for r in rows:
        r["served"], r["target"] = r["served_rps"], r["offered_rps"]
    runs = [series(rows, lambda r: number(r["minute"]) + 1, "predicted" if len(args) == 4 else "")]
    title = "Rehearsal: predicted rate, latency and capacity over time"
    if len(args) == 4:
        real = read_rows(args[3], SAMPLES_COLUMNS)
        for r in real:
            r["served"], r["target"] = r["rps"], r["target_rps"]
        runs.append(series(real, lambda r: number(r["elapsed_s"]) / 60, "real run", style="dotted"))
        title = "Rehearsal (solid) and a real run (dotted): rate, latency and capacity"
    draw(out, title, "minutes since start", runs)
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] != "rehearsal":
        print(__doc__, file=sys.stderr)
        return 2
    return cmd_rehearsal(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
