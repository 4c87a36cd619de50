# shellcheck shell=bash
# The service's log lines in CloudWatch Logs (one stream per instance, named by its id), and
# what to show when instances do not become healthy. scripts/logs.sh reads the lines;
# validate.sh and apply.sh print report_unhealthy_instances. Source it after common.sh;
# every function takes the region first and needs the AWS CLI and jq.
#
# The reads use filter-log-events with the AWS CLI's own paging (--max-items and
# --starting-token), which works alike in AWS CLI v1 and v2 (`aws logs tail` is v2 only).

# How many events one call asks for (CloudWatch Logs returns at most 10,000 or 1 MB).
LOG_PAGE_ITEMS=1000

# now_ms: the time now, in milliseconds since the epoch (CloudWatch Logs' unit).
now_ms() { printf '%s000\n' "$(date -u +%s)"; }

# log_events_json REGION GROUP START-MS [filter-log-events option...]: every event of GROUP
# from START-MS on, in time order, as one JSON array per page.
log_events_json() {
  local region=$1 group=$2 start=$3 token='' page
  shift 3
  while :; do
    page=$(aws logs filter-log-events --region "$region" --log-group-name "$group" --start-time "$start" \
      "$@" --max-items "$LOG_PAGE_ITEMS" ${token:+--starting-token "$token"} --output json) || return 1
    jq -c '.events // []' <<<"$page"
    token=$(jq -r '.NextToken // empty' <<<"$page")
    [ -n "$token" ] || return 0
  done
}

# format_log_events: JSON arrays of events (stdin) as lines a person reads: time (UTC),
# stream (the instance), message.
format_log_events() {
  jq -r '.[] | "\(.timestamp / 1000 | floor | todate) \(.logStreamName) \(.message | sub("\n$"; ""))"'
}

# answer_or_reason COMMAND...: the command's output when it succeeds; otherwise nothing, the
# last line of what it said on stderr (on stderr), and status 1. Its stderr is kept apart
# from the answer: the AWS CLI may warn there even when it succeeds.
answer_or_reason() {
  local errors answer status=0
  errors=$(mktemp)
  answer=$("$@" 2>"$errors") || status=$?
  if [ "$status" -ne 0 ]; then
    sed '/^[[:space:]]*$/d' "$errors" | tail -n 1 >&2
  fi
  rm -f "$errors"
  [ "$status" -eq 0 ] || return 1
  printf '%s\n' "$answer"
}

# instance_console REGION INSTANCE LINES: the last LINES lines of the instance's console
# output (boot, cloud-init and user data, systemd's messages), or a line saying there is none.
instance_console() {
  local output
  if ! output=$(answer_or_reason aws ec2 get-console-output --region "$1" --instance-id "$2" --latest --output json 2>&1); then
    printf '  (no console output: %s)\n' "$output"
    return 0
  fi
  # The AWS CLI decodes the base64 Output; a console also carries escape codes and CRs.
  output=$(jq -r '.Output // empty' <<<"$output" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tail -n "$3")
  if [ -z "$output" ]; then
    printf '  (no console output yet: EC2 makes it available a few minutes after boot)\n'
  else
    awk '{ print "  | " $0 }' <<<"$output"
  fi
}

# instance_log REGION GROUP INSTANCE LINES: the instance's last LINES service log lines of
# the past hour, or a line saying why there are none.
instance_log() {
  local lines
  if ! lines=$(answer_or_reason log_events_json "$1" "$2" "$(($(now_ms) - 3600000))" --log-stream-names "$3" 2>&1); then
    printf '  (cannot read %s: %s)\n' "$2" "$lines"
    return 0
  fi
  lines=$(format_log_events <<<"$lines" | tail -n "$4")
  if [ -z "$lines" ]; then
    printf '  (no line in the past hour: the CloudWatch agent shipped nothing from this instance; the console output above shows whether user data started it)\n'
  else
    awk '{ print "  | " $0 }' <<<"$lines"
  fi
}

# report_unhealthy_instances REGION ASG TARGET-GROUP-ARN LOG-GROUP: for each instance of the
# group that is not in service and healthy, or whose target is not healthy, what it is
# doing, its console output and its last service log lines; then the group's recent
# scaling activities that did not succeed (launch failures show there). On stderr.
report_unhealthy_instances() {
  local region=$1 asg=$2 target_group=$3 log_group=$4 group targets ids id activities
  group=$(group_json "$region" "$asg") || group=null
  targets=$(aws elbv2 describe-target-health --region "$region" --target-group-arn "$target_group" --output json 2>/dev/null) ||
    targets='{}'
  ids=$(jq -rn --argjson group "$group" --argjson targets "$targets" '
    [($group.Instances // [])[] | select(.LifecycleState != "InService" or .HealthStatus != "Healthy") | .InstanceId]
    + [($targets.TargetHealthDescriptions // [])[] | select(.TargetHealth.State != "healthy") | .Target.Id]
    | unique | .[]')
  {
    if [ -z "$ids" ]; then
      printf 'No instance of %s is unhealthy or out of service right now.\n' "$asg"
    fi
    for id in $ids; do
      jq -rn --arg id "$id" --argjson group "$group" --argjson targets "$targets" '
        (($group.Instances // []) | map(select(.InstanceId == $id)) | first) as $i
        | (($targets.TargetHealthDescriptions // []) | map(select(.Target.Id == $id)) | first) as $t
        | "--- \($id)"
          + (if $i then " (\($i.AvailabilityZone), launch template version \($i.LaunchTemplate.Version // "?")): \($i.LifecycleState), \($i.HealthStatus)" else ": not in the group any more" end)
          + (if $t then "; load balancer: \($t.TargetHealth.State)" + (if $t.TargetHealth.Reason then " (\($t.TargetHealth.Reason): \($t.TargetHealth.Description // "")" + ")" else "" end) else "" end)'
      printf 'console output, last lines (aws ec2 get-console-output --region %s --instance-id %s --latest):\n' "$region" "$id"
      instance_console "$region" "$id" 25
      if [ -n "$log_group" ]; then
        printf 'service log, last lines (scripts/logs.sh, stream %s of %s):\n' "$id" "$log_group"
        instance_log "$region" "$log_group" "$id" 20
      fi
    done
    activities=$(aws autoscaling describe-scaling-activities --region "$region" --auto-scaling-group-name "$asg" \
      --max-items 10 --output json 2>/dev/null) || activities='{}'
    jq -r '[.Activities[]? | select(.StatusCode != "Successful" and .StatusCode != "InProgress")] | if length > 0 then
        "--- scaling activities of the group that did not succeed:", (.[] | "  \(.StartTime) \(.StatusCode): \(.Description)\(if .StatusMessage then ": " + .StatusMessage else "" end)")
      else empty end' <<<"$activities"
  } >&2
}
