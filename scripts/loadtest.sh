#!/usr/bin/env bash
# Load test with an SLO verdict, using oha.
#
#   scripts/loadtest.sh --url URL [options]    any running service
#   scripts/loadtest.sh --env ENV [options]    the stack ./apply.sh ENV deployed: its load
#                                              balancer, and every window also samples the
#                                              ASG's desired/in-service capacity and CPU
# Options:
#   --profile NAME      gtg | read | write | mixed | computation        (default gtg)
#                       read: GET /candidate/{name} over 100 seeded names; write: POST of
#                       new names; mixed: 80 % reads and 20 % writes side by side
#                       (defined in scripts/lib/load-profiles.env, with the SLO defaults)
#   --rate RPS          fixed request rate (default: as fast as the connections allow)
#   --ramp R1,R2,...    rate steps, each lasting --duration (overrides --rate)
#   --load-csv FILE     a load minute by minute instead of --rate/--ramp/--duration: the
#                       CSV formats of scripts/rehearse.sh --load-csv (minute,rps, time,rps,
#                       a samples.csv or a rehearsal's timeline.csv; at most 15 days); each
#                       minute sends exactly its rate x 60 requests, spread over its windows
#   --concurrency N     connections (default 50)
#   --duration SECS     length of the run, or of each ramp step (default 30, at most 7200)
#   --window SECS       sampling window (default 15)
#   --slo-rps N         goal: 2xx per second in the best window    (default 1000)
#   --slo-mean-ms N     goal: mean latency below                   (default 400)
#   --slo-success PCT   goal: share of requests answered 2xx       (default 99.99)
#   --out DIR           results folder (default loadtest-results/<UTC time>)
#   --asg NAME          sample this Auto Scaling group (uses AWS_REGION)
#   --chart             draw the chart even without an ASG to sample
# Writes DIR/samples.csv (one row per window), DIR/summary.txt and, when an ASG is
# sampled (or --chart), DIR/chart.png. Exits 1 when the SLO is missed, 2 on bad usage.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/load-profiles.env
source "$(dirname "${BASH_SOURCE[0]}")/lib/load-profiles.env"

url='' env_name='' asg='' profile=gtg rate='' ramp='' concurrency=50 duration=30 window=15
slo_rps=$SLO_RPS slo_mean_ms=$SLO_MEAN_MS slo_success=$SLO_SUCCESS_PERCENT out='' chart=''
load_csv='' duration_given=''

while [ $# -gt 0 ]; do
  case $1 in
    --url) need_value "$@"; url=$2; shift 2 ;;
    --env) need_value "$@"; env_name=$2; shift 2 ;;
    --asg) need_value "$@"; asg=$2; shift 2 ;;
    --profile) need_value "$@"; profile=$2; shift 2 ;;
    --rate) need_value "$@"; rate=$2; shift 2 ;;
    --ramp) need_value "$@"; ramp=$2; shift 2 ;;
    --concurrency) need_value "$@"; concurrency=$2; shift 2 ;;
    --duration) need_value "$@"; duration=$2; duration_given=1; shift 2 ;;
    --load-csv) need_value "$@"; load_csv=$2; shift 2 ;;
    --window) need_value "$@"; window=$2; shift 2 ;;
    --slo-rps) need_value "$@"; slo_rps=$2; shift 2 ;;
    --slo-mean-ms) need_value "$@"; slo_mean_ms=$2; shift 2 ;;
    --slo-success) need_value "$@"; slo_success=$2; shift 2 ;;
    --out) need_value "$@"; out=$2; shift 2 ;;
    --chart) chart=1; shift ;;
    -h | --help) usage ;;
    *) error "unknown argument $1"; usage ;;
  esac
done

case " $LOAD_PROFILES " in *" $profile "*) ;; *) error "unknown profile '$profile' (one of $LOAD_PROFILES)"; usage ;; esac
is_count "$concurrency" || die "--concurrency must be a positive whole number"
is_count "$duration" && [ "$duration" -le 7200 ] || die "--duration must be 1 to 7200 seconds"
is_count "$window" || die "--window must be a positive whole number of seconds"
[ -z "$rate" ] || is_count "$rate" || die "--rate must be a positive whole number"
plan=''
if [ -n "$load_csv" ]; then
  [ -z "$rate$ramp$duration_given" ] || die "give --load-csv or --rate/--ramp/--duration, not both"
  require_cmd python3 "install Python 3.9 or newer"
  # One line per window, "MINUTE SECONDS REQUESTS"; a CSV it cannot read is bad usage.
  plan=$(python3 "$REPO_ROOT/scripts/python/loadplan.py" windows "$load_csv" "$window") || exit 2
elif [ -n "$ramp" ]; then
  IFS=, read -r -a steps <<<"$ramp"
  for step in "${steps[@]}"; do is_count "$step" || die "--ramp takes rates like 100,200,400"; done
else
  steps=("${rate:-0}") # 0: no rate limit
fi

connect_to=()
if [ -n "$env_name" ]; then
  [ -z "$url" ] || die "give --url or --env, not both"
  url=$(tf_output "$env_name" url) || die "no Terraform outputs for '$env_name': run ./apply.sh $env_name first"
  # HTTPS stacks: the certificate's name, connected to the load balancer (see lb_route).
  route=$(lb_route "$env_name" "$url") || die "cannot tell how to reach the load balancer of '$env_name'"
  [ -z "$route" ] || connect_to=(--connect-to "$route")
  asg=$(tf_output "$env_name" asg_name)
  AWS_REGION=$(tf_output "$env_name" region)
  export AWS_REGION
fi
[ -n "$url" ] || { error "give --url URL or --env ENV"; usage; }
url=${url%/}
if [ -n "$asg" ]; then
  require_cmd aws "install the AWS CLI to sample the Auto Scaling group"
  use_aws_region
  chart=1
fi

require_cmd curl "install curl"
ensure_cargo_tool oha oha "$OHA_VERSION"
out=${out:-$REPO_ROOT/loadtest-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
csv=$out/samples.csv
rm -f "$csv"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report() { python3 "$REPO_ROOT/scripts/python/loadreport.py" "$@"; }

# oha's --rand-regex-url reads the whole URL as a regular expression, and its parser
# does not honour backslash escapes: quote metacharacters as one-character classes.
if printf '%s' "$url" | grep -q '[][\^]'; then die "the URL must not contain [ ] \\ or ^"; fi
url_regex=$(printf '%s' "$url" | sed 's/[.?+*(){}|$]/[&]/g')

seed_reads() {
  local i
  note "seeding $READ_SEED_COUNT candidates for the read profile"
  for ((i = 0; i < READ_SEED_COUNT; i++)); do
    curl -fsS -o /dev/null --max-time 10 ${connect_to[@]+"${connect_to[@]}"} -X POST "$url/candidate/$READ_SEED_PREFIX$(printf '%03d' "$i")" ||
      die "cannot seed candidates at $url (is the service up?)"
  done
}

# oha_run NAME RATE CONNECTIONS SECONDS REQUESTS ARGS...: one bounded oha run, JSON to
# $work/NAME.json. Without REQUESTS: RATE per second (0: unlimited) for SECONDS. With
# REQUESTS: exactly that many, RATE per second, spread over SECONDS (0 requests: no run).
oha_run() {
  local name=$1 run_rate=$2 connections=$3 seconds=$4 requests=$5
  shift 5
  local limit=() bound=(-z "${seconds}s" --wait-ongoing-requests-after-deadline)
  [ "$run_rate" != 0 ] && limit=(-q "$run_rate")
  if [ -n "$requests" ]; then
    [ "$requests" -gt 0 ] || return 0
    [ "$connections" -le "$requests" ] || connections=$requests
    bound=(-n "$requests")
  fi
  oha --no-tui --output-format json "${bound[@]}" -c "$connections" -t 10s \
    ${limit[@]+"${limit[@]}"} ${connect_to[@]+"${connect_to[@]}"} "$@" >"$work/$name.json" 2>"$work/$name.err" ||
    die "oha failed: $(cat "$work/$name.err")"
}

# single_profile NAME RATE CONNECTIONS SECONDS [REQUESTS]: one single profile's requests, as
# load-profiles.env defines them (METHOD PATH; a PATH with a class is a pattern).
single_profile() {
  local name=$1 run_rate=$2 connections=$3 seconds=$4 requests=${5:-} spec method path target
  spec="PROFILE_$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')"
  read -r method path <<<"${!spec}"
  target=("$url$path")
  [[ $path == *"["* ]] && target=(--rand-regex-url "$url_regex$path")
  [ "$method" = GET ] || target=(-m "$method" "${target[@]}")
  oha_run "$name" "$run_rate" "$connections" "$seconds" "$requests" "${target[@]}"
}

# per_second COUNT SECONDS: COUNT / SECONDS as a decimal (oha's -q takes fractions).
per_second() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.6f", n / s }'; }

# run_window RATE SECONDS [REQUESTS]: the profile's traffic for one window, into
# $work/*.json: RATE per second for SECONDS (0: unlimited), or exactly REQUESTS spread over
# SECONDS (--load-csv).
run_window() {
  local run_rate=$1 seconds=$2 requests=${3:-}
  case $profile in
    mixed)
      local read_conns=$(((concurrency * MIXED_READ_PERCENT + 99) / 100))
      local write_conns=$(((concurrency * (100 - MIXED_READ_PERCENT) + 99) / 100))
      local read_rate write_rate read_requests='' write_requests=''
      if [ -n "$requests" ]; then
        read_requests=$((requests * MIXED_READ_PERCENT / 100))
        write_requests=$((requests - read_requests))
        read_rate=$(per_second "$read_requests" "$seconds")
        write_rate=$(per_second "$write_requests" "$seconds")
      else
        read_rate=$((run_rate * MIXED_READ_PERCENT / 100))
        write_rate=$((run_rate - read_rate))
        [ "$run_rate" -gt 0 ] && [ "$write_rate" -eq 0 ] && write_rate=1
      fi
      single_profile read "$read_rate" "$read_conns" "$seconds" "$read_requests" &
      local reader=$!
      single_profile write "$write_rate" "$write_conns" "$seconds" "$write_requests"
      wait "$reader"
      ;;
    *)
      [ -z "$requests" ] || run_rate=$(per_second "$requests" "$seconds")
      single_profile "$profile" "$run_rate" "$concurrency" "$seconds" "$requests"
      ;;
  esac
}

# sample_group: "desired in_service cpu" of the ASG, blanks when there is none.
sample_group() {
  if [ -z "$asg" ]; then
    printf '  \n'
    return
  fi
  local capacity cpu start end
  capacity=$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$asg" \
    --query "AutoScalingGroups[0].[DesiredCapacity, length(Instances[?LifecycleState=='InService'])]" \
    --output text 2>/dev/null || printf '\t')
  # The current minute's datapoint counts too: end the query a minute from now.
  end=$(date -u -d '+1 min' +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -v+1M +%Y-%m-%dT%H:%M:%SZ)
  start=$(date -u -d '-5 min' +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -v-5M +%Y-%m-%dT%H:%M:%SZ)
  cpu=$(aws cloudwatch get-metric-statistics --namespace AWS/EC2 --metric-name CPUUtilization \
    --dimensions "Name=AutoScalingGroupName,Value=$asg" --start-time "$start" --end-time "$end" \
    --period 60 --statistics Average --query 'sort_by(Datapoints, &Timestamp)[-1].Average' \
    --output text 2>/dev/null || true)
  [ "$cpu" = None ] && cpu=
  printf '%s %s\n' "$(tr '\t' ' ' <<<"$capacity" | sed 's/None//g')" "$cpu"
}

# run_sampled_window RATE SECONDS TARGET [REQUESTS UNTIL]: one window of load with the group
# sampled meanwhile (so the windows follow each other without gaps), appended to the CSV;
# with UNTIL, the window lasts until that many seconds into the run.
run_sampled_window() {
  local jsons=() file desired in_service cpu ahead over=()
  rm -f "$work"/*.json
  sample_group >"$work/sample" &
  local sampler=$!
  run_window "$1" "$2" "${4:-}"
  wait "$sampler" || true
  ahead=$((${5:-0} - (SECONDS - started)))
  [ "$ahead" -le 0 ] || sleep "$ahead"
  read -r desired in_service cpu <"$work/sample" || true
  for file in "$work"/*.json; do
    [ ! -f "$file" ] || jsons+=("$file")
  done
  # A planned window's rate is over the whole window, its wait after the last request too.
  [ -z "${4:-}" ] || over=(--seconds "$2")
  report window "$csv" "$((SECONDS - started))" "$3" "${desired:-}" "${in_service:-}" "${cpu:-}" \
    ${over[@]+"${over[@]}"} ${jsons[@]+"${jsons[@]}"}
}

[[ $profile = read || $profile = mixed ]] && seed_reads
started=$SECONDS
if [ -n "$load_csv" ]; then
  minutes=$(($(tail -n 1 <<<"$plan" | cut -d' ' -f1) + 1))
  note "load test of $url: profile $profile, $load_csv minute by minute ($minutes minutes), $concurrency connections, windows of at most ${window}s"
  # Each window ends when the plan says, on the run's clock: a slow window does not push the
  # minutes after it later.
  planned=0
  while read -r _ seconds requests <&3; do
    planned=$((planned + seconds))
    run_sampled_window 0 "$seconds" "$(per_second "$requests" "$seconds")" "$requests" "$planned"
  done 3<<<"$plan"
else
  note "load test of $url: profile $profile, rates ${steps[*]} (0 = unlimited), $concurrency connections, ${duration}s per step, windows of ${window}s"
  for step in "${steps[@]}"; do
    remaining=$duration
    while [ "$remaining" -gt 0 ]; do
      seconds=$((remaining < window ? remaining : window))
      run_sampled_window "$step" "$seconds" "$step"
      remaining=$((remaining - seconds))
    done
  done
fi

if [ -n "$chart" ]; then
  ensure_venv plot "$PLOT_REQUIREMENTS"
  "$(venv_bin plot python)" "$REPO_ROOT/scripts/python/loadreport.py" chart "$csv" "$out/chart.png"
fi
status=0
report verdict "$csv" --rps "$slo_rps" --mean-ms "$slo_mean_ms" --success "$slo_success" | tee "$out/summary.txt" || status=1
note "results in ${out#"$REPO_ROOT"/}/"
exit "$status"
