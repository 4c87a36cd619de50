# shellcheck shell=bash
# Temporary raises of an Auto Scaling group's minimum: scripts/scale.sh --min starts, shows
# and ends them, and apply.sh keeps an active one through a terraform apply. Source it after
# common.sh; every function takes the region first, and needs the AWS CLI and jq.
#
# A raise lives on the group itself, not on the machine that started it:
#   tag TemporaryRaise            "min=N restore=P until=TIME" (TIME in ISO 8601 UTC, or
#                                 none): the raised minimum, the one to restore, and when
#   scheduled action              with an end only: a one-time action at TIME that sets the
#     temporary-raise-end         minimum back to P and nothing else, so the raise ends even
#                                 when nobody is there to end it
# A raise whose TIME has passed is over: its action has run, and AWS deletes one-time
# actions once they have.

RAISE_TAG=TemporaryRaise
RAISE_END_ACTION=temporary-raise-end

# epoch_of TIME / iso_of SECONDS: between ISO 8601 UTC and seconds since the epoch (GNU
# date, else BSD date).
epoch_of() {
  date -u -d "$1" +%s 2>/dev/null || date -j -u -f %Y-%m-%dT%H:%M:%SZ "$1" +%s
}
iso_of() {
  date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -r "$1" +%Y-%m-%dT%H:%M:%SZ
}

# raise_of GROUP-JSON: "MIN RESTORE TIME" of the group's raise (TIME is none for a raise
# without an end); nothing when it has none, or when its end has passed.
raise_of() {
  local value until
  value=$(jq -r --arg key "$RAISE_TAG" '.Tags[]? | select(.Key == $key) | .Value' <<<"$1") || return 1
  [ -n "$value" ] || return 0
  if ! [[ $value =~ ^min=([0-9]+)\ restore=([0-9]+)\ until=([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z|none)$ ]]; then
    error "the group's tag $RAISE_TAG is '$value', not a raise scale.sh recorded (min=N restore=P until=TIME|none): remove the tag"
    return 1
  fi
  until=${BASH_REMATCH[3]}
  if [ "$until" != none ] && [ "$(epoch_of "$until")" -le "$(date -u +%s)" ]; then
    return 0
  fi
  printf '%s %s %s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "$until"
}

# end_action_of REGION ASG: the raise's scheduled end as describe-scheduled-actions
# describes it, or null when there is none.
end_action_of() {
  local actions
  actions=$(aws autoscaling describe-scheduled-actions --region "$1" --auto-scaling-group-name "$2" \
    --scheduled-action-names "$RAISE_END_ACTION" --output json) || return 1
  jq --arg name "$RAISE_END_ACTION" '[.ScheduledUpdateGroupActions[]? | select(.ScheduledActionName == $name)] | first' <<<"$actions"
}

# raise_record REGION ASG MIN RESTORE TIME: the tag that records the raise (TIME: none for
# a raise without an end). Not propagated: instances need not know.
raise_record() {
  local tag
  tag=$(jq -nc --arg asg "$2" --arg key "$RAISE_TAG" --arg value "min=$3 restore=$4 until=$5" \
    '[{ResourceId: $asg, ResourceType: "auto-scaling-group", Key: $key, Value: $value, PropagateAtLaunch: false}]')
  aws autoscaling create-or-update-tags --region "$1" --tags "$tag"
}

# raise_schedule_end REGION ASG TIME RESTORE: the one-time action that ends the raise at
# TIME by setting the minimum to RESTORE, and nothing else (replacing an earlier end).
raise_schedule_end() {
  aws autoscaling put-scheduled-update-group-action --region "$1" --auto-scaling-group-name "$2" \
    --scheduled-action-name "$RAISE_END_ACTION" --start-time "$3" --min-size "$4"
}

# raise_unschedule_end REGION ASG: remove the raise's scheduled end, if there is one.
raise_unschedule_end() {
  local action
  action=$(end_action_of "$1" "$2") || return 1
  [ "$action" != null ] || return 0
  aws autoscaling delete-scheduled-action --region "$1" --auto-scaling-group-name "$2" \
    --scheduled-action-name "$RAISE_END_ACTION"
}

# raise_forget REGION ASG: remove the raise's scheduled end, if any, and its tag. The
# group's sizes are left as they are.
raise_forget() {
  local tag
  raise_unschedule_end "$1" "$2" || return 1
  tag=$(jq -nc --arg asg "$2" --arg key "$RAISE_TAG" '[{ResourceId: $asg, ResourceType: "auto-scaling-group", Key: $key}]')
  aws autoscaling delete-tags --region "$1" --tags "$tag"
}
