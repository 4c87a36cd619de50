# shellcheck shell=bash
# Following a rollout: the launch-template version an Auto Scaling group launches, the
# versions its instances run, and the instance refresh that replaces them. apply.sh follows
# the refresh its terraform apply started (the provider starts one when the launch template
# changes, and does not wait for it); validate.sh --env checks that every instance in service
# runs the group's version. Source it after common.sh; every function takes the region first
# and needs the AWS CLI and jq.
#
# For the test suite only: CANDIDATES_ROLLOUT_POLL_SECS, the pause between two looks at a
# refresh (default 15).

# The states of an instance refresh (Auto Scaling API reference, InstanceRefresh.Status).
# Only Successful rolled the new version out; the others of the second list are over too.
REFRESH_ACTIVE_STATES=(Pending InProgress Cancelling RollbackInProgress Baking)
REFRESH_FAILED_STATES=(Failed Cancelled RollbackFailed RollbackSuccessful)

rollout_poll_secs() { printf '%s\n' "${CANDIDATES_ROLLOUT_POLL_SECS:-15}"; }

# template_version REGION GROUP-JSON: "TEMPLATE-ID VERSION", the launch template the group
# launches and its version as a number ($Latest and $Default resolved); nothing when the
# group has no launch template.
template_version() {
  local id version
  id=$(jq -r '.LaunchTemplate.LaunchTemplateId // empty' <<<"$2") || return 1
  version=$(jq -r '.LaunchTemplate.Version // empty | tostring' <<<"$2") || return 1
  [ -n "$id" ] || return 0
  version=$(resolve_version "$1" "$id" "$version") || return 1
  printf '%s %s\n' "$id" "$version"
}

# resolve_version REGION TEMPLATE-ID VERSION: VERSION as a number; $Latest and $Default (or
# nothing, which means $Default) are looked up.
resolve_version() {
  local templates
  case $3 in
    '' | "\$Default" | "\$Latest") ;;
    *)
      printf '%s\n' "$3"
      return 0
      ;;
  esac
  templates=$(aws ec2 describe-launch-templates --region "$1" --launch-template-ids "$2" --output json) || return 1
  if [ "$3" = "\$Latest" ]; then
    jq -r '.LaunchTemplates[0].LatestVersionNumber' <<<"$templates"
  else
    jq -r '.LaunchTemplates[0].DefaultVersionNumber' <<<"$templates"
  fi
}

# stale_instances REGION GROUP-JSON: "INSTANCE VERSION" for every instance in service that
# does not run the group's launch template at its version, one a line.
stale_instances() {
  local current id version rows instance template instance_version
  current=$(template_version "$1" "$2") || return 1
  [ -n "$current" ] || return 0
  read -r id version <<<"$current"
  rows=$(jq -r '.Instances[]? | select(.LifecycleState == "InService")
    | "\(.InstanceId) \(.LaunchTemplate.LaunchTemplateId // "none") \(.LaunchTemplate.Version // "" | tostring)"' <<<"$2") || return 1
  [ -n "$rows" ] || return 0
  while read -r instance template instance_version; do
    if [ "$template" != "$id" ]; then
      printf '%s %s\n' "$instance" "${template}"
      continue
    fi
    instance_version=$(resolve_version "$1" "$template" "$instance_version") || return 1
    [ "$instance_version" = "$version" ] || printf '%s %s\n' "$instance" "$instance_version"
  done <<<"$rows"
}

# refreshes_json REGION ASG: the group's instance refreshes (the last six weeks), as a JSON
# array.
refreshes_json() {
  local answer
  answer=$(aws autoscaling describe-instance-refreshes --region "$1" --auto-scaling-group-name "$2" --output json) ||
    return 1
  jq -c '.InstanceRefreshes // []' <<<"$answer"
}

# refresh_to_follow REFRESHES-JSON BEFORE-IDS: the refresh an apply should follow, as JSON
# (null when there is none): the active one (a group has at most one at a time, and the
# provider cancels an older one when it starts its own), else the newest of those that did
# not exist before the apply (BEFORE-IDS, space-separated), which may have ended already.
# Identified by ids rather than by time, so this machine's clock plays no part.
refresh_to_follow() {
  jq -c --arg before "$2" --args '
    ($before | split(" ")) as $old
    | (map(select(.Status as $s | $ARGS.positional | index($s))) | first)
      // (map(select(.InstanceRefreshId as $id | $old | index($id) | not))
          | sort_by(.StartTime // "") | last)
      // null' <<<"$1" "${REFRESH_ACTIVE_STATES[@]}"
}

# describe_refresh JSON: "STATUS|PERCENT|TO-UPDATE|REASON" of one refresh.
describe_refresh() {
  jq -r '"\(.Status)|\(.PercentageComplete // 0)|\(.InstancesToUpdate // "?")|\(.StatusReason // "" | gsub("[\n|]"; " "))"' <<<"$1"
}

# wait_for_refresh REGION ASG ID SECONDS: follow the refresh until it ends, printing its
# progress whenever it changes. Returns 0 when it succeeded; prints an ERROR with its status
# reason and returns 1 when it failed, was cancelled or rolled back, or is still running
# after SECONDS (it then goes on in AWS: the message says how to watch, stop or undo it).
wait_for_refresh() {
  local region=$1 asg=$2 id=$3 seconds=$4 deadline answer status percent to_update reason line last='' state
  deadline=$((SECONDS + seconds))
  while :; do
    answer=$(aws autoscaling describe-instance-refreshes --region "$region" --auto-scaling-group-name "$asg" \
      --instance-refresh-ids "$id" --output json) || return 1
    answer=$(jq -c '.InstanceRefreshes[0] // null' <<<"$answer")
    if [ "$answer" = null ]; then
      error "instance refresh $id of $asg is not known to Auto Scaling"
      return 1
    fi
    IFS='|' read -r status percent to_update reason <<<"$(describe_refresh "$answer")"
    line="instance refresh $id of $asg: $status, $percent % done, $to_update instance(s) to update"
    [ "$line" = "$last" ] || note "$line"
    last=$line
    [ "$status" != Successful ] || return 0
    for state in "${REFRESH_FAILED_STATES[@]}"; do
      if [ "$status" = "$state" ]; then
        error "instance refresh $id of $asg ended $status: ${reason:-Auto Scaling gave no reason} (see also: aws autoscaling describe-scaling-activities --region $region --auto-scaling-group-name $asg)"
        return 1
      fi
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      error "instance refresh $id of $asg is still $status ($percent % done, $to_update instance(s) to update) after ${seconds}s (--rollout-wait): it goes on in AWS; watch it with aws autoscaling describe-instance-refreshes --region $region --auto-scaling-group-name $asg, or stop it with aws autoscaling cancel-instance-refresh --region $region --auto-scaling-group-name $asg"
      return 1
    fi
    sleep "$(rollout_poll_secs)"
  done
}
