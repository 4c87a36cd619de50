#!/usr/bin/env bash
# Deploy one environment of the stack, or update it: check this machine, build the binary,
# bake the AMI (or reuse the one baked from the same inputs), terraform apply in workspace
# ENV, follow the instance refresh when the launch template changed, smoke-test it, and
# print its URL and dashboard.
#
#   ./apply.sh [--yes] [--binary PATH] [--packer-subnet SUBNET] [--rollout-wait SECONDS]
#              [--skip-preflight] [ENV] [-var NAME=VALUE | -var-file=FILE]...
#   ./apply.sh --rollback [--yes] [--rollout-wait SECONDS] [--skip-preflight] [ENV]
#              [-var NAME=VALUE | -var-file=FILE]...
#
# ENV         the environment, i.e. the Terraform workspace (default dev): lowercase
#             letters, digits and hyphens, e.g. perf1, nonreg1, production
# --yes       apply without Terraform's confirmation (also when CI=true); otherwise
#             Terraform shows the plan and asks
# --binary    ship this release binary (built for Amazon Linux 2023's glibc 2.34) instead
#             of building one with scripts/build_release.sh; cargo is not needed then
# --packer-subnet SUBNET   bake the AMI in this subnet (one with a route to an internet
#             gateway) instead of the region's default VPC, for accounts that deleted it
# --skip-preflight   check this machine's tools only, not the AWS account (scripts/
#             check_env.sh, which otherwise runs with the same -var/-var-file values and
#             stops everything before the build when the account cannot take the deploy)
# -var, -var-file   passed on to terraform apply (ami_id, region and project are set here)
# --rollback  deploy again the AMI this environment ran before its current one (recorded
#             on its launch template as the tag PreviousAmi by the deploy that replaced it),
#             with the same checks: nothing is built or baked
# --rollout-wait SECONDS   how long to follow the instance refresh (default 1800)
#
# A deploy that changes the launch template (a new AMI, other user data) makes Terraform's
# provider start an instance refresh and return at once. apply.sh follows it, printing its
# progress, and fails (exit 1) with the refresh's status reason, each unhealthy instance's
# console output and last service log lines, and the rollback command, when it fails, is
# cancelled or rolled back, or runs longer than --rollout-wait; only after it succeeded
# does scripts/validate.sh run. Which refresh: the one active after the apply, or one that
# did not exist before it (ids compared, not times); the launch template's version before
# and after the apply says whether there must be one.
#
# The project name is AXUM_ASG_PROJECT (default axum-asg): it prefixes every name and tags
# the AMI and every resource; destroy.sh finds them by it.
# A temporary raise of the group's minimum (scripts/scale.sh --min) outlives the apply, and
# its end then restores this apply's min_size; an apply whose min_size reaches the raise
# ends it, and one whose max_size is below the raise is refused before terraform apply.
# The region is AWS_REGION, else AWS_DEFAULT_REGION, else the AWS CLI profile's. An AMI is
# reused when one of this project's AMIs is tagged with the same InputsHash (scripts/lib/
# common.sh, inputs_hash: the binary and packer/). For the test suite only:
# CANDIDATES_DIST_DIR (where --binary stages the binary; default dist/) and
# CANDIDATES_PACKER_MANIFEST (the manifest Packer wrote; default packer/manifest.json);
# CANDIDATES_ROLLOUT_POLL_SECS (scripts/lib/rollout.sh).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/lib/common.sh"
# shellcheck source=scripts/lib/raise.sh
source "$REPO_ROOT/scripts/lib/raise.sh"
# shellcheck source=scripts/lib/rollout.sh
source "$REPO_ROOT/scripts/lib/rollout.sh"
# shellcheck source=scripts/lib/logs.sh
source "$REPO_ROOT/scripts/lib/logs.sh"


# tf_var_arg OPTION VALUE: refuse the variables apply.sh owns.
tf_var_arg() {
  case $2 in
    ami_id=* | region=*) error "$1 ${2%%=*}=... is set by apply.sh (the AMI it baked, the region of AWS_REGION)"; usage ;;
    project=*) error "$1 project=... is set by apply.sh: export AXUM_ASG_PROJECT instead, so Packer, Terraform and destroy.sh agree on it"; usage ;;
  esac
}

env_name=
auto_approve=0
binary=
packer_subnet=
preflight=1
rollback=0
rollout_wait=1800
tf_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --yes | -y) auto_approve=1; shift ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --binary=*) need_value --binary "${1#*=}"; binary=${1#*=}; shift ;;
    --packer-subnet) need_value "$@"; packer_subnet=$2; shift 2 ;;
    --packer-subnet=*) need_value --packer-subnet "${1#*=}"; packer_subnet=${1#*=}; shift ;;
    --skip-preflight) preflight=0; shift ;;
    --rollback) rollback=1; shift ;;
    --rollout-wait) need_value "$@"; rollout_wait=$2; shift 2 ;;
    -h | --help) usage ;;
    -var) need_value "$@"; tf_var_arg "$1" "$2"; tf_args+=(-var "$2"); shift 2 ;;
    -var=*) need_value -var "${1#*=}"; tf_var_arg -var "${1#*=}"; tf_args+=("$1"); shift ;;
    -var-file) need_value "$@"; tf_args+=("-var-file=$2"); shift 2 ;;
    -var-file=*) need_value -var-file "${1#*=}"; tf_args+=("$1"); shift ;;
    -*) error "unknown option $1"; usage ;;
    *) [ -z "$env_name" ] || usage; env_name=$1; shift ;;
  esac
done
env_name=${env_name:-dev}
check_env_name "$env_name" || exit 2
# Terraform runs in infra/ (-chdir): make the caller's relative var files absolute.
for i in "${!tf_args[@]}"; do
  tf_args[i]=$(absolute_var_file "${tf_args[i]}")
done
[ -z "$packer_subnet" ] || [[ $packer_subnet =~ ^subnet-[0-9a-f]+$ ]] ||
  { error "--packer-subnet takes a subnet id such as subnet-0123456789abcdef0, not '$packer_subnet'"; usage; }
is_count "$rollout_wait" || { error "--rollout-wait takes a whole number of seconds, not '$rollout_wait'"; usage; }
[ "$rollback" = 0 ] || [ -z "$binary$packer_subnet" ] ||
  { error "--rollback deploys an AMI baked before: --binary and --packer-subnet have nothing to do"; usage; }
auto_approve=$(auto_approve_in_ci "$auto_approve" applies)
# The workspace is ENV; an inherited TF_WORKSPACE would override it (and make
# `terraform workspace select` fail).
unset TF_WORKSPACE

# git_revision: the commit, with -dirty when the working tree has changes (untracked files
# included: they may be part of the build). --no-optional-locks: a read must not take the
# index lock from a concurrent git command.
git_revision() {
  local revision
  revision=$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null) || {
    printf 'unknown\n'
    return 0
  }
  if [ -n "$(git -C "$REPO_ROOT" --no-optional-locks status --porcelain 2>/dev/null)" ]; then
    revision=$revision-dirty
  fi
  printf '%s\n' "$revision"
}

# stage_binary PATH: copy PATH and a fresh checksum into the dist folder, where Packer
# takes them from; prints the staged path.
stage_binary() {
  local from=$1 dist=${CANDIDATES_DIST_DIR:-$REPO_ROOT/dist} staged
  [ -f "$from" ] || die "--binary $from: no such file"
  staged=$dist/candidates
  mkdir -p "$dist"
  if ! [ "$from" -ef "$staged" ]; then
    install -m 0755 "$from" "$staged.partial.$$"
    mv -f "$staged.partial.$$" "$staged"
  fi
  (cd "$dist" && sha256sum candidates >"candidates.sha256.partial.$$" && mv -f "candidates.sha256.partial.$$" candidates.sha256)
  printf '%s\n' "$staged"
}

# existing_ami REGION HASH: the newest available AMI of this project baked from these inputs.
existing_ami() {
  local images
  images=$(aws ec2 describe-images --region "$1" --owners self \
    --filters "Name=tag:Project,Values=$PROJECT_NAME" "Name=tag:InputsHash,Values=$2" Name=state,Values=available \
    --output json) || return 1
  jq -r '.Images | sort_by(.CreationDate) | last | .ImageId // empty' <<<"$images"
}

# ami_from_manifest MANIFEST REGION HASH: the AMI of Packer's last build, checked against
# the inputs it was asked to bake.
ami_from_manifest() {
  local manifest=$1 region=$2 hash=$3 built_hash artifact
  [ -f "$manifest" ] || die "packer build succeeded but wrote no $manifest"
  built_hash=$(jq -r '.builds[-1].custom_data.inputs_hash // empty' "$manifest") ||
    die "$manifest is not Packer's manifest JSON"
  [ "$built_hash" = "$hash" ] ||
    die "the last build in $manifest has inputs hash '${built_hash:-none}', not $hash: Packer did not record this build"
  # "region:ami-id", comma-separated when the template copies the AMI to more regions.
  artifact=$(jq -r '.builds[-1].artifact_id // empty' "$manifest" | tr ',' '\n' | sed -n "s/^$region:\(ami-[0-9a-f]*\)\$/\1/p" | head -n 1)
  [ -n "$artifact" ] || die "no AMI for $region in the artifact_id of the last build in $manifest"
  printf '%s\n' "$artifact"
}

# active_raise OUTPUTS-JSON: "ASG MIN RESTORE TIME" of the temporary raise (scripts/scale.sh
# --min) on the group of the selected workspace, when one is active; nothing on a first
# deploy.
active_raise() {
  local asg group raise
  asg=$(jq -r '.asg_name.value // empty' <<<"$1")
  [ -n "$asg" ] || return 0
  group=$(group_json "$region" "$asg") ||
    die "step 'look for a temporary raise (aws autoscaling describe-auto-scaling-groups)' failed"
  [ "$group" != null ] || return 0
  raise=$(raise_of "$group") || exit 1
  [ -z "$raise" ] || printf '%s %s\n' "$asg" "$raise"
}

# configured_sizes VAR-ARGS...: "MIN MAX", the min_size and max_size that terraform apply
# would use with these -var and -var-file arguments (terraform console evaluates them).
configured_sizes() {
  local sizes
  # shellcheck disable=SC2016 # a Terraform template, for Terraform to expand
  sizes=$(printf '%s\n' '"${var.min_size} ${var.max_size}"' | tf console -input=false "$@") || return 1
  sizes=${sizes//\"/}
  if ! [[ $sizes =~ ^[0-9]+\ [0-9]+$ ]]; then
    error "terraform console answered '$sizes' for min_size and max_size"
    return 1
  fi
  printf '%s\n' "$sizes"
}

# keep_raise ASG MIN RESTORE TIME: after the apply, the raise's record (Terraform removes
# tags it does not manage) and its end, which now restores this apply's min_size.
keep_raise() {
  raise_record "$region" "$1" "$2" "$3" "$4" || return 1
  [ "$4" = none ] || raise_schedule_end "$region" "$1" "$4" "$3" || return 1
  if [ "$4" = none ]; then
    note "kept the temporary raise of $1: min $2 with no end (scripts/scale.sh --env $env_name --cancel sets min $3 again)"
  else
    note "kept the temporary raise of $1: min $2 until $4, then min $3"
  fi
}

# bake_or_reuse_ami: sets $ami to the AMI of this binary and packer/: one baked before from
# the same inputs, else a new one from Packer.
bake_or_reuse_ami() {
  local hash revision
  if [ -n "$binary" ]; then
    binary=$(stage_binary "$binary")
    note "shipping $binary (--binary: not built here)"
  else
    binary=$(bash "$REPO_ROOT/scripts/build_release.sh" | tail -n 1) ||
      die "step 'build the binary (scripts/build_release.sh)' failed: see the output above; nothing after it was run"
  fi
  [ -f "$binary" ] && [ -f "$binary.sha256" ] || die "$binary or its .sha256 is missing"

  hash=$(inputs_hash "$binary") || die "step 'compute the inputs hash' failed"
  note "AMI inputs hash: $hash"

  ami=$(existing_ami "$region" "$hash") ||
    die "step 'look for an existing AMI (aws ec2 describe-images)' failed: see the output above"
  if [ -n "$ami" ]; then
    note "reusing $ami: baked from the same inputs (InputsHash $hash), so Packer is skipped"
  else
    revision=$(git_revision)
    note "no AMI with these inputs in $region: baking one with Packer (git revision $revision; about 10 minutes)"
    run_step "packer init" packer init "$REPO_ROOT/packer" >&2
    run_step "packer build" packer build -var "git_revision=$revision" -var "inputs_hash=$hash" \
      -var "region=$region" -var "binary_path=$binary" -var "project=$PROJECT_NAME" \
      -var "subnet_id=$packer_subnet" "$REPO_ROOT/packer" >&2
    ami=$(ami_from_manifest "${CANDIDATES_PACKER_MANIFEST:-$REPO_ROOT/packer/manifest.json}" "$region" "$hash")
    note "Packer baked $ami"
  fi
}

# rollback_ami: the AMI this environment ran before its current one, as the deploy that
# replaced it recorded it (the tag PreviousAmi of the launch template), if it is still
# registered and available.
rollback_ami() {
  local name=$PROJECT_NAME-$env_name templates previous images
  templates=$(aws ec2 describe-launch-templates --region "$region" --launch-template-names "$name" --output json) ||
    die "no launch template $name in $region (see the error above): is '$env_name' deployed there?"
  previous=$(jq -r '.LaunchTemplates[0].Tags[]? | select(.Key == "PreviousAmi") | .Value' <<<"$templates")
  [ -n "$previous" ] ||
    die "no previous AMI recorded on the launch template $name (tag PreviousAmi): a deploy records the AMI it replaces, so an environment deployed only once has none to roll back to"
  images=$(aws ec2 describe-images --region "$region" --owners self \
    --filters "Name=image-id,Values=$previous" Name=state,Values=available --output json) ||
    die "step 'look for the previous AMI (aws ec2 describe-images)' failed: see the output above"
  [ "$(jq '.Images | length' <<<"$images")" -ge 1 ] ||
    die "$previous, the AMI $name ran before, is no longer available in $region (deregistered?): deploy a build of the version you want with ./apply.sh $env_name"
  printf '%s\n' "$previous"
}

# rollout_before OUTPUTS-JSON: the group before the apply, to follow its rollout after it.
# Sets before_ami (the AMI the stack runs), before_version ("TEMPLATE VERSION" the group
# launches; empty when there is no group yet) and before_refreshes (the ids of its instance
# refreshes so far).
rollout_before() {
  local asg group refreshes
  before_ami=$(jq -r '.ami_id.value // empty' <<<"$1")
  before_version=''
  before_refreshes=''
  asg=$(jq -r '.asg_name.value // empty' <<<"$1")
  [ -n "$asg" ] || return 0
  group=$(group_json "$region" "$asg") || return 1
  [ "$group" != null ] || return 0
  before_version=$(template_version "$region" "$group") || return 1
  [ -n "$before_version" ] || return 0
  refreshes=$(refreshes_json "$region" "$asg") || return 1
  before_refreshes=$(jq -r 'map(.InstanceRefreshId) | join(" ")' <<<"$refreshes")
}

# record_previous_ami TEMPLATE: when this apply replaced the AMI, the one it replaced goes
# on the launch template as the tag PreviousAmi, which ./apply.sh --rollback deploys and
# destroy.sh keeps. Terraform leaves the tag alone (ignore_tags in infra/providers.tf).
record_previous_ami() {
  [ -n "$before_ami" ] && [ "$before_ami" != "$ami" ] || return 0
  aws ec2 create-tags --region "$region" --resources "$1" --tags "Key=PreviousAmi,Value=$before_ami" || return 1
  note "recorded $before_ami, the AMI this deploy replaced, on $1 (tag PreviousAmi): ./apply.sh $env_name --rollback deploys it again"
}

# follow_rollout: after the apply, follow the instance refresh that replaces the group's
# instances (see the header), and when it does not succeed, say what the new instances say
# and how to roll back.
follow_rollout() {
  local outputs asg group after refreshes refresh='null' id attempt
  outputs=$(tf output -json) || return 1
  asg=$(jq -r '.asg_name.value // empty' <<<"$outputs")
  group=$(group_json "$region" "$asg") || return 1
  if [ -z "$asg" ] || [ "$group" = null ]; then
    error "no Auto Scaling group '$asg' in $region after the apply"
    return 1
  fi
  after=$(template_version "$region" "$group") || return 1
  record_previous_ami "${after%% *}" ||
    error "could not tag ${after%% *} with PreviousAmi=$before_ami (see above): ./apply.sh $env_name --rollback will not know the AMI before this one"
  if [ -z "$before_version" ]; then
    note "$asg is new: its instances launch from launch template version ${after#* }; no instance refresh to follow"
    return 0
  fi
  # The provider starts the refresh before terraform apply returns; a second look, in case
  # Auto Scaling does not list it at once.
  for attempt in 1 2 3; do
    refreshes=$(refreshes_json "$region" "$asg") || return 1
    refresh=$(refresh_to_follow "$refreshes" "$before_refreshes") || return 1
    [ "$refresh" = null ] && [ "$before_version" != "$after" ] && [ "$attempt" -lt 3 ] || break
    sleep "$(rollout_poll_secs)"
  done
  if [ "$refresh" = null ]; then
    if [ "$before_version" != "$after" ]; then
      error "the launch template of $asg changed (version ${before_version#* } to ${after#* }) but no instance refresh started: its instances still run the old version. Start one: aws autoscaling start-instance-refresh --region $region --auto-scaling-group-name $asg"
      return 1
    fi
    note "the launch template of $asg is unchanged (version ${after#* }): no instance refresh to follow"
    return 0
  fi
  id=$(jq -r .InstanceRefreshId <<<"$refresh")
  if [ "$before_version" != "$after" ]; then
    note "the launch template of $asg went from version ${before_version#* } to ${after#* }: following instance refresh $id (up to ${rollout_wait}s)"
  else
    note "instance refresh $id of $asg is running (not started by this apply): following it (up to ${rollout_wait}s)"
  fi
  wait_for_refresh "$region" "$asg" "$id" "$rollout_wait" && return 0
  error "the rollout of $ami to $asg did not complete; what its instances say:"
  report_unhealthy_instances "$region" "$asg" "$(jq -r '.target_group_arn.value // empty' <<<"$outputs")" \
    "$(jq -r '.log_group_name.value // empty' <<<"$outputs")"
  if [ -n "$before_ami" ] && [ "$before_ami" != "$ami" ]; then
    error "to go back to $before_ami, the AMI before this deploy: ./apply.sh $env_name --rollback"
  fi
  return 1
}

note "deploying $PROJECT_NAME-$env_name"

# The preflight sees the values the apply will: the caller's -var/-var-file and this
# project's name; the AMI and region apply.sh sets do not change what it checks.
check_args=()
# A rollback builds and bakes nothing: the build tools and Packer's network, build instance
# and key pair are left out of its checks.
[ -z "$binary" ] && [ "$rollback" = 0 ] || check_args+=(--no-build)
[ "$rollback" = 0 ] || check_args+=(--no-bake)
[ -z "$packer_subnet" ] || check_args+=(--packer-subnet "$packer_subnet")
if [ "$preflight" = 0 ]; then
  check_args+=(--tools-only)
  note "--skip-preflight: the AWS account is not checked; a missing permission, quota or role shows up part-way through the bake or the apply"
fi
run_step "check the environment (scripts/check_env.sh)" bash "$REPO_ROOT/scripts/check_env.sh" \
  ${check_args[@]+"${check_args[@]}"} ${tf_args[@]+"${tf_args[@]}"}
region=$(aws_region) || die "no AWS region: export AWS_REGION"

if [ "$rollback" = 1 ]; then
  ami=$(rollback_ami) || exit 1
  note "rolling $PROJECT_NAME-$env_name back to $ami, the AMI it ran before its current one"
else
  bake_or_reuse_ami
fi

run_step "terraform init" tf init -input=false >&2
run_step "terraform workspace select" tf workspace select -or-create=true "$env_name" >&2
# Terraform lets the last assignment of a variable win, and a -var-file may set any:
# the AMI just baked, its region and the project come last so nothing the user passes
# replaces them.
var_args=(${tf_args[@]+"${tf_args[@]}"} -var "ami_id=$ami" -var "region=$region" -var "project=$PROJECT_NAME")

# A temporary raise of the group's minimum (scripts/scale.sh --min) outlives the apply:
# Terraform gets the raised minimum rather than min_size, and the raise is recorded again
# afterwards to restore the min_size of this apply. An apply whose own min_size covers the
# raise ends it; one whose max_size is below it is refused before terraform apply.
stack_outputs=$(tf output -json) || die "step 'read the outputs (terraform output)' failed"
raise=$(active_raise "$stack_outputs") || exit 1
raise_fate=none
if [ -n "$raise" ]; then
  read -r raise_asg raise_min _ raise_until <<<"$raise"
  sizes=$(configured_sizes "${var_args[@]}") || die "step 'read min_size and max_size (terraform console)' failed"
  read -r new_min new_max <<<"$sizes"
  held="a temporary raise holds $raise_asg at min $raise_min"
  if [ "$raise_until" = none ]; then held="$held with no end"; else held="$held until $raise_until"; fi
  if [ "$raise_min" -gt "$new_max" ]; then
    die "$held, above the max_size $new_max of this apply: end the raise first (scripts/scale.sh --env $env_name --cancel) or keep max_size at $raise_min or more; nothing was applied"
  elif [ "$raise_min" -le "$new_min" ]; then
    note "$held; the min_size $new_min of this apply covers it, so the raise ends with this apply"
    raise_fate=covered
  else
    var_args+=(-var "min_size=$raise_min")
    note "$held: this apply keeps it (min_size $raise_min instead of $new_min; the plan shows the tag $RAISE_TAG going, apply.sh puts it back after the apply)"
    raise_fate=kept
  fi
fi

rollout_before "$stack_outputs" ||
  die "step 'read the group's launch template and instance refreshes before the apply' failed: see the output above"

apply_args=(-input=false)
[ "$auto_approve" = 0 ] || apply_args+=(-auto-approve)
apply_args+=("${var_args[@]}")
note "terraform apply in workspace $env_name with $ami in $region"
run_step "terraform apply" tf apply "${apply_args[@]}" >&2
case $raise_fate in
  kept) run_step "keep the temporary raise" keep_raise "$raise_asg" "$raise_min" "$new_min" "$raise_until" ;;
  covered) run_step "end the temporary raise" raise_forget "$region" "$raise_asg" ;;
esac

run_step "follow the rollout (instance refresh)" follow_rollout
run_step "validate the deployment (scripts/validate.sh)" bash "$REPO_ROOT/scripts/validate.sh" --env "$env_name"

url=$(tf_output "$env_name" url) || die "step 'read the outputs' failed: terraform output url"
dashboard=$(tf_output "$env_name" dashboard_url) || die "step 'read the outputs' failed: terraform output dashboard_url"
printf 'URL:        %s\n' "$url"
printf 'Dashboard:  %s\n' "$dashboard"
note "$PROJECT_NAME-$env_name is up with $ami"
