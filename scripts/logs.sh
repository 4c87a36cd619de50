#!/usr/bin/env bash
# Prints the service's log lines of a deployed environment, read from CloudWatch Logs: one
# line per event, "TIME INSTANCE MESSAGE" (UTC), oldest first. The CloudWatch agent on each
# instance ships them to the environment's log group (Terraform output log_group_name), one
# stream per instance, so the lines of instances already replaced are there too.
#
#   scripts/logs.sh [--env ENV] [--since 10m] [--follow] [--instance ID] [--filter PATTERN]
#
# --env ENV          the environment (default dev), i.e. what ./apply.sh ENV deployed
# --since DURATION   how far back to start: a whole number and a unit, s, m, h, d or w
#                    (default 10m)
# --follow           keep printing new lines as they arrive, until interrupted (Ctrl-C)
# --instance ID      only the lines of one instance (its stream), e.g. i-0123456789abcdef0
# --filter PATTERN   only the lines that match a CloudWatch Logs filter pattern, such as
#                    '{ $.status >= 500 }' or '"listing cut off"'
#
# Works with AWS CLI v1 and v2 (filter-log-events with the CLI's own paging). --follow
# looks again every 5 s over the last 30 s and prints what it has not printed: a line that
# reaches CloudWatch Logs later than 30 s after its time is only seen without --follow.
# For the test suite only: CANDIDATES_LOGS_POLL_SECS (default 5).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/logs.sh
source "$REPO_ROOT/scripts/lib/logs.sh"

# How far back each --follow look goes: late lines within it are still printed once.
FOLLOW_LOOKBACK_MS=30000

env_name=dev
since=10m
follow=0
filter_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --env) need_value "$@"; env_name=$2; shift 2 ;;
    --since) need_value "$@"; since=$2; shift 2 ;;
    --follow | -f) follow=1; shift ;;
    --instance) need_value "$@"; [[ $2 =~ ^i-[0-9a-f]+$ ]] || { error "--instance takes an instance id such as i-0123456789abcdef0, not '$2'"; usage; }
      filter_args+=(--log-stream-names "$2"); shift 2 ;;
    --filter) need_value "$@"; filter_args+=(--filter-pattern "$2"); shift 2 ;;
    -h | --help) usage ;;
    -*) error "unknown option $1"; usage ;;
    *) error "unexpected argument $1"; usage ;;
  esac
done
check_env_name "$env_name" || exit 2
if ! [[ $since =~ ^([1-9][0-9]*)([smhdw])$ ]]; then
  error "--since takes a whole number and a unit (s, m, h, d or w), such as 10m or 2h, not '$since'"
  usage
fi
case ${BASH_REMATCH[2]} in
  s) since_ms=$((BASH_REMATCH[1] * 1000)) ;;
  m) since_ms=$((BASH_REMATCH[1] * 60000)) ;;
  h) since_ms=$((BASH_REMATCH[1] * 3600000)) ;;
  d) since_ms=$((BASH_REMATCH[1] * 86400000)) ;;
  w) since_ms=$((BASH_REMATCH[1] * 604800000)) ;;
esac

require_cmd aws "install the AWS CLI: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
require_cmd jq "install jq (Debian: apt-get install jq; macOS: brew install jq)"
group=$(tf_output "$env_name" log_group_name 2>/dev/null) ||
  die "no log group among the Terraform outputs of '$env_name': deploy it with ./apply.sh $env_name (a stack deployed before the logs existed needs one more apply)"
region=$(tf_output "$env_name" region) || die "no region among the Terraform outputs of '$env_name'"

events=$(log_events_json "$region" "$group" "$(($(now_ms) - since_ms))" ${filter_args[@]+"${filter_args[@]}"}) ||
  die "cannot read $group in $region (aws logs filter-log-events): see the error above"
format_log_events <<<"$events"
[ "$follow" = 1 ] || exit 0

# Each look covers the last FOLLOW_LOOKBACK_MS and prints the events the previous looks did
# not: the ids seen in the window are kept, the older ones forgotten.
seen=$(jq -s --argjson start "$(($(now_ms) - FOLLOW_LOOKBACK_MS))" \
  '[.[][] | select(.timestamp >= $start) | {key: .eventId, value: .timestamp}] | from_entries' <<<"$events")
while :; do
  sleep "${CANDIDATES_LOGS_POLL_SECS:-5}"
  start=$(($(now_ms) - FOLLOW_LOOKBACK_MS))
  events=$(log_events_json "$region" "$group" "$start" ${filter_args[@]+"${filter_args[@]}"}) ||
    die "cannot read $group in $region (aws logs filter-log-events): see the error above"
  jq -s --argjson seen "$seen" '[.[][] | select($seen[.eventId] == null)]' <<<"$events" | format_log_events
  seen=$(jq -s --argjson seen "$seen" --argjson start "$start" \
    '($seen | with_entries(select(.value >= $start))) + ([.[][] | {key: .eventId, value: .timestamp}] | from_entries)' <<<"$events")
done
