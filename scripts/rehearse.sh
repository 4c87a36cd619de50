#!/usr/bin/env bash
# Scaling rehearsal: replays a load through a model of the Auto Scaling group that
# ./apply.sh ENV would deploy (its CloudWatch alarms and policies, scheduled actions, the
# load balancer and the instances), minute by minute, and predicts capacity, latency,
# errors and cost before anything is paid for. The model and its sources: docs/REHEARSAL.md.
#
#   scripts/rehearse.sh [ENV] [-var-file=FILE]... [-var NAME=VALUE]... LOAD [options]
#
# ENV, -var, -var-file  as for ./apply.sh: the variables come from infra/ (defaults,
#                     terraform.tfvars, *.auto.tfvars, TF_VAR_*) then these, last one wins
# LOAD, with the meaning loadtest.sh gives them:
#   --profile NAME    gtg | read | write | mixed | computation           (default gtg)
#   --rate RPS        a fixed rate, or --ramp R1,R2,... (rate steps), each lasting
#   --duration SECS   (default 30)
#   --load-csv FILE   a day or a week instead: minute,rps or time,rps (HH:MM,
#                     2026-12-07T06:30, or 2026-12-07T06:30Z with an offset), or a
#                     samples.csv written by loadtest.sh
#   --load-from-cloudwatch ENV   the real traffic of deployed environment ENV instead:
#                     its load balancer's RequestCount per minute, read from CloudWatch
#                     (AWS CLI credentials), with the group's real desired and in-service
#                     capacity and CPU as the real run to compare with (as --compare).
#                     ENV's names come from its Terraform outputs, else from ./apply.sh's
#                     naming through the AWS API; it is also the rehearsed environment
#                     unless one is given
#   --since SPAN      with --load-from-cloudwatch: the last 90m, 36h, 7d (default), 2w ...
#   --from TIME [--to TIME]   ... or this window: 2026-11-30T00:00Z, 2026-11-30 (UTC
#                     unless an offset is given); --to defaults to 5 minutes ago
# Options:
#   --start TIME      wall-clock start, for the schedules: 2026-12-07T06:30 (local to the
#                     schedules' time zone), ...T05:30Z or ...T06:30[Europe/Paris]; default:
#                     the CSV's first date, else now
#   --instance-rps N  requests per second one instance serves at 100 % CPU; default:
#                     calibrated on the shipped binary (dist/candidates, else
#                     target/dist/candidates, else built), cached per binary
#   --calibrate-from FILE  a real run's samples.csv (loadtest.sh against the deployed group):
#                     the rps per instance at 100 % CPU fitted from its CPU and traffic,
#                     instead of --instance-rps or a calibration
#   --recalibrate     measure again even when a calibration is cached
#   --calibration-secs N   seconds of each of the 3 samples of load per profile when
#                     calibrating; their spread is reported (default 2)
#   --slo-rps N --slo-mean-ms N --slo-success PCT   goals, as loadtest.sh (its defaults from
#                     scripts/lib/load-profiles.env), except the throughput goal, which
#                     defaults to the load's own peak
#   --compare FILE    a loadtest.sh samples.csv: the prediction's error minute by minute
#                     (desired, in service, CPU, p99) and its mean, in DIR/compare.csv and
#                     the verdict, and the real run laid over the prediction in the chart
#   --assume NAME=VALUE   override a named assumption (metric_delay_minutes, boot_secs, ...;
#                     docs/REHEARSAL.md lists them; summary.json prints those used)
#   --prices FILE     a price table in the format of rehearsal/data/prices-us-east-1.json
# Failures and retries during the load (docs/REHEARSAL.md, "Failures and retries"):
#   --fail instance@MINUTE[xN]   N instances (default 1) stop answering at minute MINUTE of
#                     the load: the load balancer stops routing to them after its health
#                     check's unhealthy_threshold x interval, the group replaces them
#   --fail-az ZONE@FROM[-TO]     zone ZONE (a, b, ...: the group's zones in name order) goes
#                     dark from minute FROM until minute TO (or the end): the group launches
#                     in the other zones and rebalances when it comes back; both repeatable
#   --retries N       clients retry a failed request up to N times (0-10, default 0)
#   --backoff KIND    fixed | exponential | exponential-jitter (default, as the AWS SDKs);
#                     with --retries only, as is --retry-base-ms
#   --retry-base-ms MS    the first retry's backoff (default 100; capped at 20 s as the AWS
#                     SDKs, --assume retry_max_backoff_ms=...)
#   --print-loadtest  also print the scripts/loadtest.sh command that runs this load
#                     for real against ENV, to check the prediction (--compare its run)
#   --optimize        search for the cheapest configuration that meets the SLO on this load
#                     (with its --fail and --retries): min_size, max_size, instance_type
#                     (the price table's), scaling_mode, the step policy's thresholds,
#                     evaluation periods and steps, target_cpu_percent, the warm-up and the
#                     schedules' minimums; skips what Terraform's checks refuse; prints the
#                     best few against today's configuration, writes DIR/recommended.tfvars
#                     (./apply.sh ENV -var-file=DIR/recommended.tfvars) and rehearses it
#   --bound NAME=LO..HI   with --optimize: the range searched for a numeric variable
#                     (min_size=1..8, scale_out_cpu_threshold=50..70); NAME=A,B the values
#                     of instance_type or scaling_mode (repeatable; docs/REHEARSAL.md)
#   --out DIR         results folder (default rehearsal-results/<UTC time>)
# Writes DIR/timeline.csv (one row per minute), DIR/summary.json, DIR/summary.txt and
# DIR/chart.png (the load test's layout; clock time when the start was given); with
# --load-from-cloudwatch also the load read (DIR/cloudwatch-load.csv, a load CSV) and the
# real run (DIR/cloudwatch-real.csv, a samples.csv). Values Terraform's own checks refuse
# (validations, preconditions in infra/) are refused with Terraform's messages. Exits 0 when
# the predicted SLO is met, 1 when it is missed, 2 on bad usage, 3 when the rehearsal could
# not run.
# For development: REHEARSE_BIN runs that rehearse binary instead of building one;
# REHEARSAL_CACHE_DIR moves the calibration cache (default .tools/rehearsal);
# REHEARSAL_CLOUDWATCH_MAX_DATAPOINTS cuts CloudWatch requests smaller (default 100,800).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

args=()
env_name='' instance_rps='' out='' compare='' calibrate_from='' load_given=''
cloudwatch_env='' since='' from='' to=''
while [ $# -gt 0 ]; do
  case $1 in
    --load-from-cloudwatch=* | --since=* | --from=* | --to=* | --fail=* | --fail-az=* | --retries=* | --backoff=* | \
      --retry-base-ms=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    --rate | --ramp | --duration | --load-csv | --rate=* | --ramp=* | --duration=* | --load-csv=*)
      load_given=${1%%=*} ;;
  esac
  case $1 in
    --load-from-cloudwatch) need_value "$@"; cloudwatch_env=$2; shift 2 ;;
    --since) need_value "$@"; since=$2; shift 2 ;;
    --from) need_value "$@"; from=$2; shift 2 ;;
    --to) need_value "$@"; to=$2; shift 2 ;;
    --print-loadtest | --optimize) args+=("$1"); shift ;;
    --bound) need_value "$@"; args+=("$1" "$2"); shift 2 ;;
    --fail | --fail-az | --retries | --backoff | --retry-base-ms) need_value "$@"; args+=("$1" "$2"); shift 2 ;;
    -h | --help) usage ;;
    -var | -var-file) [ $# -ge 2 ] || usage; args+=("$1=$2"); shift 2 ;;
    -var=* | -var-file=*) args+=("$1"); shift ;;
    --instance-rps) [ $# -ge 2 ] || usage; instance_rps=$2; args+=("$1" "$2"); shift 2 ;;
    --instance-rps=*) instance_rps=${1#*=}; args+=("$1"); shift ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    --compare) [ $# -ge 2 ] || usage; compare=$2; args+=("$1" "$2"); shift 2 ;;
    --compare=*) compare=${1#*=}; args+=("$1"); shift ;;
    --calibrate-from) [ $# -ge 2 ] || usage; calibrate_from=$2; args+=("$1" "$2"); shift 2 ;;
    --calibrate-from=*) calibrate_from=${1#*=}; args+=("$1"); shift ;;
    --recalibrate) args+=("$1"); shift ;;
    --profile | --rate | --ramp | --duration | --load-csv | --start | --slo-rps | --slo-mean-ms | \
      --slo-success | --assume | --prices | --concurrency | --window | --calibration-secs)
      [ $# -ge 2 ] || { error "$1 needs a value"; usage; }
      args+=("$1" "$2"); shift 2 ;;
    --*=*) args+=("$1"); shift ;;
    -*) error "unknown option $1"; usage ;;
    *) [ -z "$env_name" ] || { error "one environment only: '$env_name' and '$1'"; usage; }; env_name=$1; shift ;;
  esac
done
placeholder_load=()
if [ -n "$cloudwatch_env" ]; then
  check_env_name "$cloudwatch_env" || exit 2
  [ -z "$load_given" ] || { error "give --load-from-cloudwatch or $load_given, not both"; exit 2; }
  [ -z "$compare" ] || { error "--load-from-cloudwatch compares with the real run itself: give it or --compare, not both"; exit 2; }
  require_cmd python3 "install Python 3.9 or newer"
  window=$(python3 "$REPO_ROOT/scripts/python/cloudwatch_replay.py" window \
    ${since:+--since "$since"} ${from:+--from "$from"} ${to:+--to "$to"}) || exit 2
  read -r window_from window_to window_period <<<"$window"
  env_name=${env_name:-$cloudwatch_env}
  # The load is read after the usage check; the check only needs one.
  placeholder_load=(--rate 1)
elif [ -n "$since$from$to" ]; then
  error "--since, --from and --to choose the window of --load-from-cloudwatch"
  exit 2
fi
env_name=${env_name:-dev}
check_env_name "$env_name" || exit 2

rehearse_bin=${REHEARSE_BIN:-}
if [ -z "$rehearse_bin" ]; then
  require_cmd cargo "install Rust from https://rustup.rs"
  (cd "$REPO_ROOT" && cargo build --quiet --release -p rehearsal --bin rehearse) ||
    die "cannot build the rehearsal (cargo build -p rehearsal)"
  rehearse_bin=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/rehearse
fi
# Bad usage stops here, before anything is built, read or measured.
"$rehearse_bin" "$env_name" --infra "$REPO_ROOT/infra" --check ${args[@]+"${args[@]}"} \
  ${placeholder_load[@]+"${placeholder_load[@]}"} || exit $?

# cloudwatch_target ENV: "REGION GROUP LOAD-BALANCER" (the ARN suffix CloudWatch names it by)
# of a deployed environment: from its Terraform outputs, else by the names infra/ gives them
# (<project>-<env>) through the AWS API.
cloudwatch_target() {
  local env=$1 name=$PROJECT_NAME-$1 outputs='{}' region group balancer arn
  if command -v terraform >/dev/null 2>&1; then
    outputs=$(TF_WORKSPACE=$env tf output -no-color -json 2>/dev/null) || outputs='{}'
  fi
  read -r group region balancer < <(python3 "$REPO_ROOT/scripts/python/cloudwatch_replay.py" outputs <<<"$outputs")
  [ "$group" != - ] || group=$name
  [ "$balancer" != - ] || balancer=''
  [ "$region" != - ] || region=$(aws_region) || { error "no AWS region: set AWS_REGION (or a region in your AWS profile)"; return 1; }
  if [ -z "$balancer" ]; then
    arn=$(AWS_REGION=$region AWS_DEFAULT_REGION=$region aws elbv2 describe-load-balancers --names "$name" \
      --query 'LoadBalancers[0].LoadBalancerArn' --output text) || {
      error "no load balancer named $name in $region: is '$env' deployed (./apply.sh $env), in this account and region?"
      return 1
    }
    balancer=${arn#*:loadbalancer/}
  fi
  printf '%s %s %s\n' "$region" "$group" "$balancer"
}

out=${out:-$REPO_ROOT/rehearsal-results/$(date -u +%Y%m%dT%H%M%SZ)}
if [ -n "$cloudwatch_env" ]; then
  require_cmd aws "install the AWS CLI to read CloudWatch: https://aws.amazon.com/cli/"
  target=$(cloudwatch_target "$cloudwatch_env") || exit 3
  read -r AWS_REGION group balancer <<<"$target"
  export AWS_REGION AWS_DEFAULT_REGION=$AWS_REGION
  note "reading $cloudwatch_env's traffic from CloudWatch ($AWS_REGION): load balancer $balancer, group $group, $window_from to $window_to"
  mkdir -p "$out"
  python3 "$REPO_ROOT/scripts/python/cloudwatch_replay.py" read --load-balancer "$balancer" --group "$group" \
    --from "$window_from" --to "$window_to" --period "$window_period" \
    --load "$out/cloudwatch-load.csv" --real "$out/cloudwatch-real.csv" --aws "$(command -v aws)" || exit $?
  compare=$out/cloudwatch-real.csv
  args+=(--load-csv "$out/cloudwatch-load.csv" --compare "$compare")
fi

# service_binary: the binary the AMI ships (Cargo.toml's dist profile), to calibrate
# against.
service_binary() {
  local candidate
  for candidate in "$REPO_ROOT/dist/candidates" "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/dist/candidates"; do
    if [ -x "$candidate" ]; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  note "no shipped binary in dist/ or target/dist/: building one (cargo build --profile dist -p candidates)"
  (cd "$REPO_ROOT" && cargo build --quiet --profile dist -p candidates --bin candidates) >&2 || return 1
  printf '%s\n' "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/dist/candidates"
}

cache_dir=${REHEARSAL_CACHE_DIR:-$TOOLS_DIR/rehearsal}
if [ -z "$instance_rps" ] && [ -z "$calibrate_from" ]; then
  binary=$(service_binary) || die "cannot build the service to calibrate; give --instance-rps instead"
  # The rehearsal reads and writes the cache by the binary's SHA-256; oha is only needed
  # when there is nothing cached for this binary yet.
  hash=$(sha256sum "$binary" | cut -d' ' -f1)
  if [ ! -f "$cache_dir/calibration-$hash.json" ] || [[ " ${args[*]} " == *" --recalibrate "* ]]; then
    ensure_cargo_tool oha oha "$OHA_VERSION"
    note "calibrating the per-request CPU cost of each profile on ${binary#"$REPO_ROOT"/} (a few seconds each)"
  fi
  args+=(--service-binary "$binary" --cache-dir "$cache_dir")
elif [ -n "$calibrate_from" ]; then
  # A fit from a real run needs no calibration; a cached one lets the rehearsal say what
  # the fit means as a vcpu_speed.
  for binary in "$REPO_ROOT/dist/candidates" "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/dist/candidates"; do
    [ -x "$binary" ] || continue
    if [ -f "$cache_dir/calibration-$(sha256sum "$binary" | cut -d' ' -f1).json" ]; then
      args+=(--service-binary "$binary" --cache-dir "$cache_dir")
    fi
    break
  done
fi

status=0
"$rehearse_bin" "$env_name" --infra "$REPO_ROOT/infra" --out "$out" ${args[@]+"${args[@]}"} || status=$?
[ "$status" -le 1 ] || exit "$status"

ensure_venv plot "$PLOT_REQUIREMENTS"
chart_args=("$out/timeline.csv" "$out/chart.png")
[ -z "$compare" ] || chart_args+=(--compare "$compare")
grep -q '"clock_time": true' "$out/summary.json" && chart_args+=(--clock)
"$(venv_bin plot python)" "$REPO_ROOT/scripts/python/timechart.py" rehearsal "${chart_args[@]}" ||
  die "could not draw the chart"
note "results in ${out#"$REPO_ROOT"/}/"
exit "$status"
