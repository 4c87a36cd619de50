#!/usr/bin/env python3
"""A load CSV as loadtest.sh --load-csv plays it: the same files, with the same meaning, as
the scaling rehearsal's --load-csv (rehearsal/src/load.rs), so that a rehearsed load can be
run for real.

    loadplan.py minutes CSV
        the offered rate of each minute, one per line (what the rehearsal models)
    loadplan.py windows CSV WINDOW
        the load test's plan: one line per window, "MINUTE SECONDS REQUESTS", windows of at
        most WINDOW seconds that never straddle a minute, each minute's requests
        (its rate x 60, rounded) spread over its windows in proportion to their length

The CSV is one of:
    minute,rps          a rate from each minute offset (0, 1, 5, ...), held until the next
                        row; the last row lasts a minute. `offered_rps` may name the rate (a
                        rehearsal's timeline.csv is a load CSV).
    time,rps            the same from clock times (06:30, a time earlier than the one before
                        is the next day), dates and times (2026-12-07T06:30), or instants
                        (2026-12-07T06:30Z, ...+01:00; what rehearse.sh reads from CloudWatch)
    elapsed_s,target_rps,...  a samples.csv that loadtest.sh wrote: each row the window that
                        ends at elapsed_s, at its target rate, or (an unlimited run, target 0)
                        at the rate its `requests` give
A minute the CSV covers only in part is averaged over the part it covers, and every minute
of the plan lasts 60 seconds, as the rehearsal models it. Bad input: an ERROR and exit 2.
"""

import csv
import datetime
import math
import sys

# A longer plan is a mistake more often than a load test: 15 days, the age of CloudWatch's
# one-minute data.
MAX_MINUTES = 15 * 24 * 60


class PlanError(Exception):
    pass


def number(path, line, column, text):
    try:
        value = float(text.strip())
    except ValueError:
        raise PlanError(f"{path}: line {line}: {column} '{text}' is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise PlanError(f"{path}: line {line}: {column} {value:g} must be a number >= 0")
    return value


def read_csv(path):
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            rows = [(i + 2, [c.strip() for c in row]) for i, row in enumerate(reader) if row]
    except OSError as err:
        raise PlanError(f"{path}: {err.strerror}") from None
    if not rows:
        raise PlanError(f"{path}: no data rows")
    return header, rows


def column(header, *names):
    return next((header.index(n) for n in names if n in header), None)


def cell(row, index):
    return row[index] if index < len(row) else ""


def parse_time(text):
    """('instant', datetime) | ('civil', datetime) | ('clock', time) | None."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if "T" in value or " " in value or value.count("-") >= 2:
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
        return ("instant", moment) if moment.tzinfo is not None else ("civil", moment)
    try:
        return ("clock", datetime.time.fromisoformat(value))
    except ValueError:
        return None


def held(path, points):
    """Rates at minute offsets, each held until the next one; the last lasts a minute."""
    origin = points[0][0]
    segments = []
    for i, (minute, rps) in enumerate(points):
        following = points[i + 1][0] if i + 1 < len(points) else minute + 1
        if following <= minute:
            raise PlanError(f"{path}: minutes and times must increase (row {i + 1})")
        segments.append(((minute - origin) * 60, (following - origin) * 60, rps))
    return segments


def time_points(path, rows, time_col, rate_col):
    points, first, kind_seen = [], None, None
    day, previous_clock = 0, None
    for line, row in rows:
        text = cell(row, time_col)
        parsed = parse_time(text)
        if parsed is None:
            raise PlanError(
                f"{path}: line {line}: time '{text}' is neither HH:MM nor a date and time such as 2026-12-07T06:30"
            )
        kind, value = parsed
        if kind_seen is not None and (kind == "instant") != (kind_seen == "instant"):
            raise PlanError(f"{path}: line {line}: time '{text}' mixes times with and without an offset (Z, +01:00)")
        kind_seen = kind
        if kind == "clock":
            if previous_clock is not None and value < previous_clock:
                day += 1
            previous_clock = value
            value = datetime.datetime.combine(datetime.date(2000, 1, 1), value) + datetime.timedelta(days=day)
        first = first or value
        points.append(((value - first).total_seconds() / 60, number(path, line, "rps", cell(row, rate_col))))
    return points


def segments_of(path):
    header, rows = read_csv(path)
    elapsed, target = column(header, "elapsed_s"), column(header, "target_rps")
    if elapsed is not None and target is not None:
        requests = column(header, "requests")
        segments, start = [], 0.0
        for line, row in rows:
            end = number(path, line, "elapsed_s", cell(row, elapsed))
            if end <= start:
                raise PlanError(f"{path}: line {line}: elapsed_s must increase")
            rps = number(path, line, "target_rps", cell(row, target))
            if rps == 0 and requests is not None:
                rps = number(path, line, "requests", cell(row, requests)) / (end - start)
            segments.append((start, end, rps))
            start = end
        return segments
    minute, rate = column(header, "minute"), column(header, "rps", "offered_rps")
    if minute is not None and rate is not None:
        points = [
            (number(path, line, "minute", cell(row, minute)), number(path, line, "rps", cell(row, rate)))
            for line, row in rows
        ]
        return held(path, points)
    time, rate = column(header, "time"), column(header, "rps")
    if time is not None and rate is not None:
        return held(path, time_points(path, rows, time, rate))
    raise PlanError(
        f"{path}: expected the columns minute,rps or time,rps, or loadtest.sh's samples.csv "
        f"(elapsed_s,target_rps,...); found: {','.join(header)}"
    )


def per_minute(segments):
    """Each minute's average rate over the part of it the segments cover."""
    end = max(s[1] for s in segments)
    minutes = math.ceil(end / 60)
    if minutes > MAX_MINUTES:
        raise PlanError(f"the load lasts {minutes} minutes: at most {MAX_MINUTES} (15 days) are played")
    requests, covered = [0.0] * minutes, [0.0] * minutes
    for start, stop, rps in segments:
        for m in range(max(int(start // 60), 0), min(math.ceil(stop / 60), minutes)):
            overlap = max(min(stop, (m + 1) * 60) - max(start, m * 60), 0.0)
            requests[m] += overlap * rps
            covered[m] += overlap
    return [r / c if c > 0 else 0.0 for r, c in zip(requests, covered)]


def windows(rates, window):
    """(minute, seconds, requests) of each window of the plan."""
    for minute, rps in enumerate(rates):
        total = math.floor(rps * 60 + 0.5)
        elapsed = sent = 0
        while elapsed < 60:
            seconds = min(window, 60 - elapsed)
            elapsed += seconds
            # Cumulative rounding: the windows of a minute add up to its requests exactly.
            due = math.floor(total * elapsed / 60 + 0.5)
            yield minute, seconds, due - sent
            sent = due


def show(value):
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "minutes":
            for rps in per_minute(segments_of(argv[2])):
                print(show(rps))
            return 0
        if len(argv) == 4 and argv[1] == "windows":
            if not argv[3].isdigit() or int(argv[3]) < 1:
                raise PlanError(f"the window must be a positive whole number of seconds, not '{argv[3]}'")
            for minute, seconds, requests in windows(per_minute(segments_of(argv[2])), int(argv[3])):
                print(minute, seconds, requests)
            return 0
    except PlanError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
