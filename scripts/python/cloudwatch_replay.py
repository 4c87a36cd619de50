#!/usr/bin/env python3
"""Reads a deployed stack's real traffic from CloudWatch, for scripts/rehearse.sh
--load-from-cloudwatch: the load balancer's requests become the rehearsal's load, and the
group's capacity and CPU the real run laid over the prediction.

    cloudwatch_replay.py window [--since SPAN | --from TIME [--to TIME]]
        check a time window and print "FROM TO PERIOD": UTC minutes and the period in
        seconds CloudWatch still keeps for it; exit 2 with an ERROR when it is not one
    cloudwatch_replay.py outputs < OUTPUTS_JSON
        the group's name, the region and the load balancer's ARN suffix from `terraform
        output -json` on standard input, "-" for each one missing (no state, an old state)
    cloudwatch_replay.py read --load-balancer SUFFIX --group NAME --from TIME --to TIME
                              --period SECS --load CSV --real CSV [--aws PATH]
        read the metrics with `aws cloudwatch get-metric-data` (the AWS CLI's region and
        credentials; --aws: the CLI the calling script found, as a Python launcher may put
        another one first on PATH) and write the two CSVs below; exit 3 with an ERROR when
        it cannot

SPAN is 90m, 36h, 7d or 2w; TIME is 2026-12-07T06:30Z, 2026-12-07T07:30+01:00 or
2026-12-07 (UTC when it names no offset). Without --to a window ends 5 minutes ago: the
load balancer's and the group's last minutes are published late, and a minute not yet
published would read as a minute without traffic.

The load CSV (`time,rps,requests`, one row per minute, times in UTC) is a load CSV the
rehearsal and `loadtest.sh --load-csv` read. `RequestCount` (Sum) is the load: the load
balancer publishes it only for minutes with requests, so a minute without a datapoint is a
minute without traffic (zero), never a gap. The real CSV has loadtest.sh's samples.csv
columns, one row per minute: requests, 2xx (`HTTPCode_Target_2XX_Count`), mean latency
(`TargetResponseTime` Average), `GroupDesiredCapacity`, `GroupInServiceInstances` (group
metrics, which infra/ enables at one minute) and the group's `CPUUtilization` (Average);
a minute without a datapoint stays blank there.

CloudWatch's limits, as documented for GetMetricData: at most 500 queries and 100,800
datapoints per request, so the window is cut into requests of at most that many datapoints
(REHEARSAL_CLOUDWATCH_MAX_DATAPOINTS lowers it, for tests); a request's answer may come in
several pages (NextToken), all read. One-minute data is kept 15 days, 5-minute data 63 days
and 1-hour data 455 days, and the period of a query that starts further back must be a
multiple of 300 or 3600 seconds, so older windows are read at that period and each total
spread evenly over its minutes.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

UTC = datetime.timezone.utc
MINUTE = datetime.timedelta(minutes=1)
PUBLICATION_DELAY = datetime.timedelta(minutes=5)
MAX_DATAPOINTS = 100_800
# (how far back a query may start, the period CloudWatch keeps that far back)
RETENTION = [
    (datetime.timedelta(days=15), 60),
    (datetime.timedelta(days=63), 300),
    (datetime.timedelta(days=455), 3600),
]
SPAN_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class UsageError(Exception):
    """The user asked for a window CloudWatch cannot give: exit 2."""


class ReadError(Exception):
    """CloudWatch or the AWS CLI failed: exit 3."""


def note(message):
    print(f"NOTE: {message}", file=sys.stderr)


def now_minute():
    return datetime.datetime.now(UTC).replace(second=0, microsecond=0)


def iso(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_time(text, flag):
    """A date and time, UTC unless it names an offset; a date alone is its midnight."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{flag} '{text}' is not a date and time such as 2026-12-07T06:30Z, "
            "2026-12-07T07:30+01:00 or 2026-12-07 (UTC unless it names an offset)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_span(text):
    match = re.fullmatch(r"([1-9][0-9]*)([mhdw])", text.strip())
    if not match:
        raise UsageError(f"--since '{text}' is not a span such as 90m, 36h, 7d or 2w")
    return datetime.timedelta(**{SPAN_UNITS[match.group(2)]: int(match.group(1))})


def floor_to(moment, seconds):
    epoch = int(moment.timestamp())
    return datetime.datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def window(since=None, start=None, end=None, now=None):
    """(from, to, period) of a replay: whole periods CloudWatch still keeps."""
    now = now or now_minute()
    if since is not None and start is not None:
        raise UsageError("give --since or --from, not both")
    if since is not None and end is not None:
        raise UsageError("--to goes with --from; --since counts back from now")
    latest = now - PUBLICATION_DELAY
    if since is not None:
        start = now - parse_span(since)
    elif start is None:
        start = now - parse_span("7d")
    else:
        start = parse_time(start, "--from")
    end = latest if end is None else parse_time(end, "--to")
    if end > now:
        raise UsageError(f"--to {iso(end)} is in the future (it is {iso(now)} UTC)")
    if start >= end:
        raise UsageError(f"the window from {iso(start)} to {iso(end)} is empty: --from must come before --to")
    age = now - start
    period = next((p for limit, p in RETENTION if age <= limit), None)
    if period is None:
        raise UsageError(
            f"{iso(start)} is {age.days} days ago: CloudWatch keeps metrics for 455 days (at one-hour resolution)"
        )
    start, end = floor_to(start, period), floor_to(end, period)
    if start >= end:
        raise UsageError(f"the window is shorter than CloudWatch's {period}-second period for data that old")
    return start, end, period


def queries(load_balancer, group, period):
    """The metrics read, by query id: (namespace, name, dimension, value, statistic)."""
    wanted = {
        "requests": ("AWS/ApplicationELB", "RequestCount", "LoadBalancer", load_balancer, "Sum"),
        "ok": ("AWS/ApplicationELB", "HTTPCode_Target_2XX_Count", "LoadBalancer", load_balancer, "Sum"),
        "latency": ("AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", load_balancer, "Average"),
        "desired": ("AWS/AutoScaling", "GroupDesiredCapacity", "AutoScalingGroupName", group, "Average"),
        "inservice": ("AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", group, "Average"),
        "cpu": ("AWS/EC2", "CPUUtilization", "AutoScalingGroupName", group, "Average"),
    }
    return [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": namespace,
                    "MetricName": name,
                    "Dimensions": [{"Name": dimension, "Value": value}],
                },
                "Period": period,
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for query_id, (namespace, name, dimension, value, stat) in wanted.items()
    ]


def max_datapoints():
    text = os.environ.get("REHEARSAL_CLOUDWATCH_MAX_DATAPOINTS", "")
    if not text:
        return MAX_DATAPOINTS
    if not text.isdigit() or not 0 < int(text) <= MAX_DATAPOINTS:
        raise UsageError(f"REHEARSAL_CLOUDWATCH_MAX_DATAPOINTS={text} must be a whole number from 1 to {MAX_DATAPOINTS}")
    return int(text)


def split(start, end, period, query_count, limit):
    """Consecutive [from, to) requests of at most `limit` datapoints over all queries."""
    periods = limit // query_count
    if periods < 1:
        raise UsageError(f"{query_count} queries do not fit in {limit} datapoints per request")
    step = datetime.timedelta(seconds=period * periods)
    pieces = []
    while start < end:
        pieces.append((start, min(start + step, end)))
        start += step
    return pieces


def timestamp(value):
    """A datapoint's time as the AWS CLI prints it: ISO 8601, or epoch seconds."""
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, UTC)
    return parse_time(value, "a CloudWatch timestamp")


def get_metric_data(request, aws="aws"):
    """One page of GetMetricData, through the AWS CLI."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(request, handle)
        path = handle.name
    try:
        done = subprocess.run(
            [aws, "cloudwatch", "get-metric-data", "--no-paginate", "--output", "json",
             "--cli-input-json", f"file://{path}"],
            capture_output=True, text=True, check=False,
        )
    except FileNotFoundError:
        raise ReadError("the AWS CLI ('aws') is not installed: see https://aws.amazon.com/cli/") from None
    finally:
        os.unlink(path)
    if done.returncode != 0:
        raise ReadError(f"aws cloudwatch get-metric-data failed: {done.stderr.strip()}")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise ReadError(f"aws cloudwatch get-metric-data printed no JSON: {done.stdout[:200]}") from None


def read(metric_queries, pieces, fetch=get_metric_data):
    """{query id: {time: value}} over every request and every page of each."""
    values = {q["Id"]: {} for q in metric_queries}
    pages = 0
    for start, end in pieces:
        request = {
            "MetricDataQueries": metric_queries,
            "StartTime": iso(start),
            "EndTime": iso(end),
            "ScanBy": "TimestampAscending",
        }
        while True:
            answer = fetch(request)
            pages += 1
            for message in answer.get("Messages") or []:
                note(f"CloudWatch: {message.get('Code', '')} {message.get('Value', '')}".strip())
            for result in answer.get("MetricDataResults") or []:
                status = result.get("StatusCode", "Complete")
                if status not in ("Complete", "PartialData"):
                    details = "; ".join(m.get("Value", "") for m in result.get("Messages") or [])
                    raise ReadError(f"CloudWatch could not read {result.get('Id')}: {status} {details}".strip())
                series = values.setdefault(result["Id"], {})
                for when, value in zip(result.get("Timestamps") or [], result.get("Values") or []):
                    moment = timestamp(when)
                    if start <= moment < end:
                        series[moment] = float(value)
            token = answer.get("NextToken")
            if not token:
                break
            request = dict(request, NextToken=token)
    return values, pages


def number(value):
    if value is None:
        return ""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def rows(values, start, end, period):
    """One row per minute: each period's totals spread evenly over its minutes."""
    per_minute = period // 60
    moment = start
    while moment < end:
        slot = floor_to(moment, period)

        def total(query_id):
            value = values[query_id].get(slot)
            return None if value is None else value / per_minute

        def level(query_id):
            return values[query_id].get(slot)

        yield moment, {
            "requests": total("requests") or 0.0,
            "ok": total("ok") or 0.0,
            "latency": level("latency"),
            "desired": level("desired"),
            "inservice": level("inservice"),
            "cpu": level("cpu"),
        }
        moment += MINUTE


def write_csvs(values, start, end, period, load_path, real_path):
    minutes = 0
    with open(load_path, "w", encoding="utf-8") as load, open(real_path, "w", encoding="utf-8") as real:
        load.write("time,rps,requests\n")
        real.write("elapsed_s,target_rps,requests,ok_2xx,failed,rps,mean_ms,p50_ms,p99_ms,desired,in_service,cpu_percent\n")
        for moment, row in rows(values, start, end, period):
            minutes += 1
            requests, ok = row["requests"], row["ok"]
            latency = None if row["latency"] is None else row["latency"] * 1000
            load.write(f"{iso(moment)},{number(requests / 60)},{number(requests)}\n")
            real.write(",".join([
                str(minutes * 60), number(requests / 60), number(requests), number(ok),
                number(max(requests - ok, 0.0)), number(ok / 60), number(latency), "", "",
                number(row["desired"]), number(row["inservice"]), number(row["cpu"]),
            ]) + "\n")
    return minutes


def option(args, name, default=None):
    if name in args:
        i = args.index(name)
        if i + 1 >= len(args):
            raise UsageError(f"{name} needs a value")
        return args[i + 1]
    return default


def cmd_window(args):
    start, end, period = window(option(args, "--since"), option(args, "--from"), option(args, "--to"))
    print(iso(start), iso(end), period)
    return 0


def cmd_read(args):
    needed = ["--load-balancer", "--group", "--from", "--to", "--period", "--load", "--real"]
    missing = [n for n in needed if option(args, n) is None]
    if missing:
        raise UsageError(f"read needs {', '.join(missing)}")
    start, end = parse_time(option(args, "--from"), "--from"), parse_time(option(args, "--to"), "--to")
    period = int(option(args, "--period"))
    load_balancer, group = option(args, "--load-balancer"), option(args, "--group")
    metric_queries = queries(load_balancer, group, period)
    pieces = split(start, end, period, len(metric_queries), max_datapoints())
    aws = option(args, "--aws", "aws")
    values, pages = read(metric_queries, pieces, lambda request: get_metric_data(request, aws))
    minutes = write_csvs(values, start, end, period, option(args, "--load"), option(args, "--real"))
    note(
        f"read {minutes} minutes ({iso(start)} to {iso(end)}, {period}-second datapoints) from CloudWatch "
        f"in {len(pieces)} GetMetricData request(s), {pages} page(s)"
    )
    if period > 60:
        note(f"data older than 15 days is kept at {period}-second resolution: each total is spread evenly over its minutes")
    if not values["requests"]:
        raise ReadError(
            f"no RequestCount datapoint for load balancer {load_balancer} between {iso(start)} and {iso(end)}: "
            "no traffic, or another environment or region (AWS_REGION)"
        )
    if not values["desired"]:
        note(
            f"no GroupDesiredCapacity datapoint for group {group}: group metrics were not enabled then "
            "(./apply.sh enables them), so the real capacity is left out of the overlay"
        )
    return 0


def cmd_outputs(_args):
    try:
        outputs = json.load(sys.stdin)
    except ValueError:
        outputs = {}
    values = [
        (outputs.get(name) or {}).get("value") if isinstance(outputs, dict) else None
        for name in ("asg_name", "region", "alb_arn_suffix")
    ]
    print(" ".join(v if isinstance(v, str) and v and " " not in v else "-" for v in values))
    return 0


def main(argv):
    commands = {"window": cmd_window, "outputs": cmd_outputs, "read": cmd_read}
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[argv[1]](argv[2:])
    except UsageError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    except ReadError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
