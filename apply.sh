#!/usr/bin/env bash
# Deploy one environment of the stack, or update it: check this machine, build the binary,
# bake the AMI (or reuse the one baked from the same inputs), terraform apply in workspace
# ENV, smoke-test it, and print its URL and dashboard.
#
#   ./apply.sh [--yes] [--binary PATH] [--packer-subnet SUBNET] [--skip-preflight] [ENV]
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
# CANDIDATES_PACKER_MANIFEST (the manifest Packer wrote; default packer/manifest.json).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/lib/common.sh"
# shellcheck source=scripts/lib/raise.sh
source "$REPO_ROOT/scripts/lib/raise.sh"


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
tf_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --yes | -y) auto_approve=1; shift ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --binary=*) need_value --binary "${1#*=}"; binary=${1#*=}; shift ;;
    --packer-subnet) need_value "$@"; packer_subnet=$2; shift 2 ;;
    --packer-subnet=*) need_value --packer-subnet "${1#*=}"; packer_subnet=${1#*=}; shift ;;
    --skip-preflight) preflight=0; shift ;;
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

# active_raise: "ASG MIN RESTORE TIME" of the temporary raise (scripts/scale.sh --min) on
# the group of the selected workspace, when one is active; nothing on a first deploy.
active_raise() {
  local outputs asg group raise
  outputs=$(tf output -json) || die "step 'read the outputs (terraform output)' failed"
  asg=$(jq -r '.asg_name.value // empty' <<<"$outputs")
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

note "deploying $PROJECT_NAME-$env_name"

# The preflight sees the values the apply will: the caller's -var/-var-file and this
# project's name; the AMI and region apply.sh sets do not change what it checks.
check_args=()
[ -z "$binary" ] || check_args+=(--no-build)
[ -z "$packer_subnet" ] || check_args+=(--packer-subnet "$packer_subnet")
if [ "$preflight" = 0 ]; then
  check_args+=(--tools-only)
  note "--skip-preflight: the AWS account is not checked; a missing permission, quota or role shows up part-way through the bake or the apply"
fi
run_step "check the environment (scripts/check_env.sh)" bash "$REPO_ROOT/scripts/check_env.sh" \
  ${check_args[@]+"${check_args[@]}"} ${tf_args[@]+"${tf_args[@]}"}
region=$(aws_region) || die "no AWS region: export AWS_REGION"

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
raise=$(active_raise) || exit 1
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

apply_args=(-input=false)
[ "$auto_approve" = 0 ] || apply_args+=(-auto-approve)
apply_args+=("${var_args[@]}")
note "terraform apply in workspace $env_name with $ami in $region"
run_step "terraform apply" tf apply "${apply_args[@]}" >&2
case $raise_fate in
  kept) run_step "keep the temporary raise" keep_raise "$raise_asg" "$raise_min" "$new_min" "$raise_until" ;;
  covered) run_step "end the temporary raise" raise_forget "$region" "$raise_asg" ;;
esac

run_step "validate the deployment (scripts/validate.sh)" bash "$REPO_ROOT/scripts/validate.sh" --env "$env_name"

url=$(tf_output "$env_name" url) || die "step 'read the outputs' failed: terraform output url"
dashboard=$(tf_output "$env_name" dashboard_url) || die "step 'read the outputs' failed: terraform output dashboard_url"
printf 'URL:        %s\n' "$url"
printf 'Dashboard:  %s\n' "$dashboard"
note "$PROJECT_NAME-$env_name is up with $ami"
