#!/usr/bin/env bash
# Imperative scaling of the Auto Scaling Group, for planned events (a launch, a demo,
# a load test), and a look at its state.
#
#   scripts/scale.sh [--env ENV] COUNT         set the desired capacity to COUNT
#   scripts/scale.sh [--env ENV] PERCENT%      ... to PERCENT of the group's maximum,
#                                              rounded up (50% of 4 is 2, 30% is 2)
#   scripts/scale.sh [--env ENV] status        desired, in-service, and every instance
#
# ENV defaults to dev; the group's name and region come from that environment's
# Terraform outputs. --asg NAME (with AWS_REGION) names a group directly instead.
# Values outside the group's min..max are refused: change min_size/max_size with
# Terraform first. The scaling policies keep working afterwards and may move the
# capacity again when a CPU alarm fires; for a lasting change use a schedule.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"


env_name=dev
asg=
target=
selector=()
while [ $# -gt 0 ]; do
  case $1 in
    --env) need_value "$@"; env_name=$2; selector=(--env "$env_name"); shift 2 ;;
    --asg) need_value "$@"; asg=$2; selector=(--asg "$asg"); shift 2 ;;
    -h | --help) usage ;;
    -*) error "unknown option $1"; usage ;;
    *) [ -z "$target" ] || usage; target=$1; shift ;;
  esac
done
[ -n "$target" ] || usage

require_cmd aws "install the AWS CLI: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
if [ -z "$asg" ]; then
  asg=$(tf_output "$env_name" asg_name) || die "no Terraform outputs for environment '$env_name': run ./apply.sh $env_name first, or pass --asg NAME"
  AWS_REGION=$(tf_output "$env_name" region)
  export AWS_REGION
fi
use_aws_region

describe() {
  aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$asg" "$@"
}

limits=$(describe --query 'AutoScalingGroups[0].[MinSize, MaxSize, DesiredCapacity]' --output text) ||
  die "cannot read Auto Scaling group '$asg' (are your AWS credentials for the right account?)"
read -r min max desired <<<"$limits"
[ "$min" != None ] || die "no Auto Scaling group named '$asg'"

if [ "$target" = status ]; then
  in_service=$(describe --query "length(AutoScalingGroups[0].Instances[?LifecycleState=='InService'])" --output text)
  printf 'group        %s\n' "$asg"
  printf 'desired      %s (min %s, max %s)\n' "$desired" "$min" "$max"
  printf 'in service   %s\n' "$in_service"
  printf '\n%-22s %-12s %-18s %-10s %s\n' INSTANCE ZONE STATE HEALTH "TEMPLATE VERSION"
  describe --query 'AutoScalingGroups[0].Instances[].[InstanceId, AvailabilityZone, LifecycleState, HealthStatus, LaunchTemplate.Version]' \
    --output text | sort -k3,3 -k1,1 | while read -r id zone state health version; do
    printf '%-22s %-12s %-18s %-10s %s\n' "$id" "$zone" "$state" "$health" "$version"
  done
  exit 0
fi

case $target in
  *%)
    percent=${target%\%}
    [[ $percent =~ ^[0-9]+$ ]] && [ "$percent" -ge 1 ] && [ "$percent" -le 100 ] ||
      die "'$target' is not a percentage from 1% to 100%"
    count=$(((max * percent + 99) / 100))
    note "$target of the maximum ($max) is $count instance(s)"
    ;;
  *)
    [[ $target =~ ^[0-9]+$ ]] || die "'$target' is neither an instance count, a percentage nor 'status'"
    count=$((10#$target))
    ;;
esac

if [ "$count" -lt "$min" ] || [ "$count" -gt "$max" ]; then
  die "$count is outside the group's limits $min..$max; change min_size/max_size with Terraform first (the group is unchanged)"
fi
if [ "$count" -eq "$desired" ]; then
  note "$asg already wants $count instance(s); nothing to do"
  exit 0
fi
aws autoscaling set-desired-capacity --auto-scaling-group-name "$asg" --desired-capacity "$count"
note "desired capacity of $asg: $desired -> $count (follow it with: scripts/scale.sh ${selector[*]:-}${selector[*]:+ }status)"
