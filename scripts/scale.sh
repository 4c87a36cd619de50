#!/usr/bin/env bash
# Imperative scaling of the Auto Scaling Group, for planned events (a launch, a demo, a
# load test, a test environment sized before a run), and a look at its state.
#
#   scripts/scale.sh [--env ENV] COUNT         set the desired capacity to COUNT
#   scripts/scale.sh [--env ENV] PERCENT%      ... to PERCENT of the group's maximum,
#                                              rounded up (50% of 4 is 2, 30% is 2)
#   scripts/scale.sh [--env ENV] --min N [--for DURATION]
#                                              raise the minimum to N (or to PERCENT% of
#                                              the maximum), and the desired capacity
#                                              with it when below; with --for, only for
#                                              DURATION: 45m, 2h, 1h30m, 1d (up to 31d)
#   scripts/scale.sh [--env ENV] --cancel      end the raise now
#   scripts/scale.sh [--env ENV] status        desired, the raise and its end, in-service,
#                                              and every instance
#
# ENV defaults to dev; the group's name and region come from that environment's
# Terraform outputs. --asg NAME (with AWS_REGION) names a group directly instead.
# Values above the group's maximum are refused (and a COUNT below its minimum): change
# min_size/max_size with Terraform first. The scaling policies keep working afterwards:
# they may move the desired capacity again when a CPU alarm fires, but never below the
# minimum, so a raise holds when load is low and a plain COUNT may not.
#
# A raise is recorded on the group (tag TemporaryRaise). With --for it ends by itself, even
# with nobody there: a one-time scheduled action (temporary-raise-end) sets the minimum back
# to what it was before the raise, and nothing else; the policies then scale in as load
# allows. A new --min replaces the active raise and keeps the minimum it restores.
# ./apply.sh keeps an active raise through its terraform apply; a terraform apply run by
# hand sets min_size back to its variable (README, "Temporary capacity").
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/raise.sh
source "$REPO_ROOT/scripts/lib/raise.sh"

# The longest --for: a raise of more than a month is a change of min_size in Terraform.
MAX_RAISE_SECS=$((31 * 86400))

env_name=dev
asg=
target=
raise_to=
duration=
cancel=0
selector=()
while [ $# -gt 0 ]; do
  case $1 in
    --env) need_value "$@"; env_name=$2; selector=(--env "$env_name"); shift 2 ;;
    --asg) need_value "$@"; asg=$2; selector=(--asg "$asg"); shift 2 ;;
    --min) need_value "$@"; raise_to=$2; shift 2 ;;
    --for) need_value "$@"; duration=$2; shift 2 ;;
    --cancel) cancel=1; shift ;;
    -h | --help) usage ;;
    -*) error "unknown option $1"; usage ;;
    *) [ -z "$target" ] || usage; target=$1; shift ;;
  esac
done
actions=$(( ${#target} > 0 )) # COUNT, PERCENT% or status
[ -z "$raise_to" ] || actions=$((actions + 1))
[ "$cancel" = 0 ] || actions=$((actions + 1))
[ -z "$duration" ] || [ -n "$raise_to" ] || { error "--for is the length of a raise: it goes with --min"; usage; }
[ "$actions" = 1 ] || { error "say one thing to do: COUNT, PERCENT%, --min N, --cancel or status"; usage; }

# seconds_of DURATION: "45m", "2h", "1h30m", "1d12h" as seconds; fails on anything else.
seconds_of() {
  [ -n "$1" ] && [[ $1 =~ ^(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?$ ]] || return 1
  printf '%s\n' $((10#${BASH_REMATCH[2]:-0} * 86400 + 10#${BASH_REMATCH[4]:-0} * 3600 + 10#${BASH_REMATCH[6]:-0} * 60))
}

# count_of VALUE MAX: an instance count, or PERCENT% of MAX rounded up (30% of 4 is 2).
count_of() {
  local value=$1 max=$2 percent
  case $value in
    *%)
      percent=${value%\%}
      [[ $percent =~ ^[0-9]+$ ]] && [ "$((10#$percent))" -ge 1 ] && [ "$((10#$percent))" -le 100 ] ||
        die "'$value' is not a percentage from 1% to 100%"
      printf '%s\n' $(((max * 10#$percent + 99) / 100))
      ;;
    *)
      [[ $value =~ ^[0-9]+$ ]] || die "'$value' is not an instance count or a percentage of the maximum"
      printf '%s\n' $((10#$value))
      ;;
  esac
}

# Checked before anything is read or changed.
raise_secs=
if [ -n "$duration" ]; then
  raise_secs=$(seconds_of "$duration") ||
    die "--for '$duration' is not a duration such as 45m, 2h, 1h30m or 1d"
  [ "$raise_secs" -ge 60 ] && [ "$raise_secs" -le "$MAX_RAISE_SECS" ] ||
    die "--for $duration: a raise lasts from 1 minute to 31 days (longer is a change of min_size in Terraform)"
fi

require_cmd aws "install the AWS CLI: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
require_cmd jq "install jq (Debian: apt-get install jq; macOS: brew install jq)"
if [ -z "$asg" ]; then
  asg=$(tf_output "$env_name" asg_name) || die "no Terraform outputs for environment '$env_name': run ./apply.sh $env_name first, or pass --asg NAME"
  AWS_REGION=$(tf_output "$env_name" region)
  export AWS_REGION
fi
use_aws_region
region=$AWS_REGION
again="scripts/scale.sh ${selector[*]:-}${selector[*]:+ }"

group=$(group_json "$region" "$asg") ||
  die "cannot read Auto Scaling group '$asg' (are your AWS credentials for the right account?)"
[ "$group" != null ] || die "no Auto Scaling group named '$asg'"
read -r min max desired < <(jq -r '"\(.MinSize) \(.MaxSize) \(.DesiredCapacity)"' <<<"$group")
raise=$(raise_of "$group") || exit 1

# until_text TIME: "TIME (in 1h 59m)".
until_text() {
  local left
  left=$(($(epoch_of "$1") - $(date -u +%s)))
  [ "$left" -ge 0 ] || left=0
  printf '%s (in %dh %02dm)' "$1" $((left / 3600)) $((left % 3600 / 60))
}

show_status() {
  local in_service raise_line action
  in_service=$(jq '[.Instances[]? | select(.LifecycleState == "InService")] | length' <<<"$group")
  if [ -n "$raise" ]; then
    read -r raised restore until <<<"$raise"
    if [ "$until" = none ]; then
      raise_line="min $raised with no end: ${again}--cancel sets min $restore again"
    else
      raise_line="min $raised until $(until_text "$until"), then min $restore again"
    fi
    if [ "$min" -lt "$raised" ]; then
      raise_line="$raise_line; but the minimum is $min now: it was changed after the raise"
    fi
  else
    raise_line=none
    action=$(end_action_of "$region" "$asg") || die "cannot read the scheduled actions of '$asg'"
    if [ "$action" != null ]; then
      raise_line="none, but a leftover $RAISE_END_ACTION sets min $(jq -r .MinSize <<<"$action") at $(jq -r .StartTime <<<"$action") (${again}--cancel removes it)"
    fi
  fi
  printf 'group        %s\n' "$asg"
  printf 'desired      %s (min %s, max %s)\n' "$desired" "$min" "$max"
  printf 'raise        %s\n' "$raise_line"
  printf 'in service   %s\n' "$in_service"
  printf '\n%-22s %-12s %-18s %-10s %s\n' INSTANCE ZONE STATE HEALTH "TEMPLATE VERSION"
  jq -r '.Instances[]? | [.InstanceId, .AvailabilityZone, .LifecycleState, .HealthStatus, (.LaunchTemplate.Version // "-")] | @tsv' <<<"$group" |
    sort -k3,3 -k1,1 | while IFS=$'\t' read -r id zone state health version; do
    printf '%-22s %-12s %-18s %-10s %s\n' "$id" "$zone" "$state" "$health" "$version"
  done
}

# set_desired COUNT: the desired capacity, within min..max.
set_desired() {
  local count=$1
  if [ "$count" -lt "$min" ] || [ "$count" -gt "$max" ]; then
    die "$count is outside the group's limits $min..$max; change min_size/max_size with Terraform first, or raise the minimum with --min (the group is unchanged)"
  fi
  if [ "$count" -eq "$desired" ]; then
    note "$asg already wants $count instance(s); nothing to do"
    return 0
  fi
  aws autoscaling set-desired-capacity --region "$region" --auto-scaling-group-name "$asg" --desired-capacity "$count"
  note "desired capacity of $asg: $desired -> $count (follow it with: ${again}status)"
}

# other_schedules: the group's own scheduled actions (var.schedules), which still fire
# during a raise.
other_schedules() {
  aws autoscaling describe-scheduled-actions --region "$region" --auto-scaling-group-name "$asg" --output json |
    jq -r --arg ours "$RAISE_END_ACTION" '[.ScheduledUpdateGroupActions[]? | select(.ScheduledActionName != $ours)
      | "\(.ScheduledActionName) (\(.Recurrence // .StartTime))"] | join(", ")'
}

# start_raise COUNT: raise the minimum to COUNT, until now + raise_secs when set.
start_raise() {
  local count=$1 restore=$min until=none previous_until=none previous_min new_desired=() schedules
  if [ -n "$raise" ]; then
    # A new raise replaces the active one, and restores what that one would have.
    read -r _ restore previous_until <<<"$raise"
  fi
  if [ "$count" -gt "$max" ]; then
    die "$count is above the group's maximum $max: raise max_size with Terraform first (the group is unchanged)"
  fi
  if [ "$count" -le "$restore" ]; then
    die "$count is not above the group's minimum $restore: a raise goes up (--cancel ends one; the group is unchanged)"
  fi
  [ -z "$raise_secs" ] || until=$(iso_of $(($(date -u +%s) + raise_secs)))

  # The end and the record first: alone they change nothing, and a raise never runs
  # without the end it was given.
  if [ "$until" != none ]; then
    raise_schedule_end "$region" "$asg" "$until" "$restore" || die "could not schedule the end of the raise (the group is unchanged)"
  else
    raise_unschedule_end "$region" "$asg" || die "could not remove the end of the previous raise (the group is unchanged)"
  fi
  raise_record "$region" "$asg" "$count" "$restore" "$until" || die "could not tag '$asg' with the raise"

  [ "$desired" -ge "$count" ] || new_desired=(--desired-capacity "$count")
  if ! aws autoscaling update-auto-scaling-group --region "$region" --auto-scaling-group-name "$asg" \
    --min-size "$count" ${new_desired[@]+"${new_desired[@]}"}; then
    # Put back what was there: the previous raise, or none.
    if [ -n "$raise" ]; then
      read -r previous_min _ _ <<<"$raise"
      raise_record "$region" "$asg" "$previous_min" "$restore" "$previous_until" || true
      if [ "$previous_until" = none ]; then
        raise_unschedule_end "$region" "$asg" || true
      else
        raise_schedule_end "$region" "$asg" "$previous_until" "$restore" || true
      fi
    else
      raise_forget "$region" "$asg" || true
    fi
    die "could not raise the minimum of '$asg' (the group is unchanged)"
  fi

  if [ "$until" = none ]; then
    note "minimum of $asg: $min -> $count, with no end: ${again}--cancel sets it back to $restore"
  else
    note "minimum of $asg: $min -> $count until $until ($duration): then the scheduled action $RAISE_END_ACTION sets it back to $restore"
  fi
  if [ "${#new_desired[@]}" -gt 0 ]; then
    note "desired capacity of $asg: $desired -> $count"
  fi
  schedules=$(other_schedules) || schedules=
  [ -z "$schedules" ] ||
    note "the group's scheduled actions still fire during the raise and set their own sizes: $schedules"
  note "follow it with: ${again}status"
}

cancel_raise() {
  local restore action has_tag
  action=$(end_action_of "$region" "$asg") || die "cannot read the scheduled actions of '$asg'"
  has_tag=$(jq --arg key "$RAISE_TAG" '[.Tags[]? | select(.Key == $key)] | length' <<<"$group")
  if [ -z "$raise" ] && [ "$action" = null ] && [ "$has_tag" = 0 ]; then
    die "no temporary raise on '$asg': nothing to cancel"
  fi
  if [ -n "$raise" ]; then
    read -r _ restore _ <<<"$raise"
    if [ "$min" -ne "$restore" ]; then
      aws autoscaling update-auto-scaling-group --region "$region" --auto-scaling-group-name "$asg" --min-size "$restore" ||
        die "could not set the minimum of '$asg' back to $restore (the raise is still on)"
    fi
  fi
  raise_forget "$region" "$asg" || die "could not remove the raise's scheduled end and tag from '$asg'"
  if [ -n "$raise" ]; then
    note "raise ended: minimum of $asg: $min -> $restore; the desired capacity stays $desired until the policies scale in"
  else
    note "no raise was active on '$asg'; removed what an earlier one left (its tag or scheduled end)"
  fi
}

if [ "$target" = status ]; then
  show_status
elif [ "$cancel" = 1 ]; then
  cancel_raise
elif [ -n "$raise_to" ]; then
  count=$(count_of "$raise_to" "$max") || exit 1
  start_raise "$count"
else
  count=$(count_of "$target" "$max") || exit 1
  set_desired "$count"
fi
