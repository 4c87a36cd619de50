#!/usr/bin/env bash
# Destroy one environment of the stack, then the AMIs and snapshots nothing uses any more.
#
#   ./destroy.sh [--yes] [--keep-amis] [ENV]
#
# ENV          the environment, i.e. the Terraform workspace (default dev)
# --yes        destroy without Terraform's confirmation (also when CI=true); otherwise
#              Terraform lists what it will destroy and asks
# --keep-amis  leave every AMI and snapshot in place
#
# terraform destroy runs in workspace ENV with the AMI and region recorded in its state,
# then the workspace is deleted. Then this project's AMIs (tag Project=<project>: the one
# ENV was deployed with, else AXUM_ASG_PROJECT, default axum-asg) in that region are
# deregistered and their EBS snapshots deleted, except those that the $Latest or $Default
# version of any launch template in the region still uses, whatever project or tool made
# it, and those another environment would roll back to (./apply.sh ENV --rollback: the tag
# PreviousAmi of its launch template). The region is the one ENV was deployed to, else AWS_REGION, AWS_DEFAULT_REGION or
# the profile's.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/lib/common.sh"


env_name=
auto_approve=0
keep_amis=0
while [ $# -gt 0 ]; do
  case $1 in
    --yes | -y) auto_approve=1; shift ;;
    --keep-amis) keep_amis=1; shift ;;
    -h | --help) usage ;;
    -*) error "unknown option $1"; usage ;;
    *) [ -z "$env_name" ] || usage; env_name=$1; shift ;;
  esac
done
env_name=${env_name:-dev}
check_env_name "$env_name" || exit 2
auto_approve=$(auto_approve_in_ci "$auto_approve" destroys)
# The workspace is ENV; an inherited TF_WORKSPACE would override it.
unset TF_WORKSPACE

require_cmd terraform "install Terraform 1.5 or newer: https://developer.hashicorp.com/terraform/install"
require_cmd jq "install jq (Debian: apt-get install jq; macOS: brew install jq)"
[ "$keep_amis" = 1 ] ||
  require_cmd aws "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"

# destroy_stack: terraform destroy in workspace ENV, then delete the workspace. Sets
# $region and $PROJECT_NAME to the ones recorded in the state, if any.
destroy_stack() {
  local workspaces state resources ami args project
  workspaces=$(tf workspace list) || die "step 'terraform workspace list' failed"
  # One name a line, the selected one after "* ".
  if ! awk '{ print $NF }' <<<"$workspaces" | grep -qxF -- "$env_name"; then
    note "no Terraform workspace '$env_name': no stack to destroy"
    return 0
  fi
  run_step "terraform workspace select" tf workspace select "$env_name" >&2
  state=$(tf state pull) || die "step 'terraform state pull' failed"
  [ -n "$state" ] || state='{}'
  resources=$(jq '[.resources[]? | select(.mode == "managed")] | length' <<<"$state")
  region=$(jq -r '.outputs.region.value // empty' <<<"$state")
  project=$(jq -r '.outputs.project.value // empty' <<<"$state")
  if [ -n "$project" ] && [ "$project" != "$PROJECT_NAME" ]; then
    note "'$env_name' was deployed as project $project: its AMIs are the ones tagged Project=$project"
    PROJECT_NAME=$project
  fi
  if [ "$resources" -gt 0 ]; then
    [ -n "$region" ] || region=$(aws_region) || die "no region in the state of '$env_name' and none configured: export AWS_REGION (the region it was deployed to)"
    # ami_id is a required variable and data.aws_ami reads it even to destroy: pass the
    # AMI the stack runs, which still exists (this script removes AMIs only afterwards).
    ami=$(jq -r '[(.resources[]? | select(.mode == "managed" and .type == "aws_launch_template") | .instances[]?.attributes.image_id),
                  (.resources[]? | select(.mode == "data" and .type == "aws_ami") | .instances[]?.attributes.id)]
                 | map(select(type == "string" and startswith("ami-"))) | first // empty' <<<"$state")
    if [ -z "$ami" ]; then
      ami="ami-00000000000000000"
      note "no AMI recorded in the state of '$env_name': passing the placeholder $ami"
    fi
    args=(-input=false)
    [ "$auto_approve" = 0 ] || args+=(-auto-approve)
    args+=(-var "ami_id=$ami" -var "region=$region" -var "project=$PROJECT_NAME")
    note "terraform destroy in workspace $env_name: $resources resource(s) in $region"
    run_step "terraform destroy" tf destroy "${args[@]}" >&2
  else
    note "workspace $env_name holds no resources: nothing for Terraform to destroy"
  fi
  # The selected workspace cannot be deleted.
  run_step "terraform workspace select default" tf workspace select default >&2
  run_step "terraform workspace delete" tf workspace delete "$env_name" >&2
  note "deleted the Terraform workspace $env_name"
}

# images_in_use: "AMI TEMPLATE" lines, one per AMI that the $Latest or $Default version of a
# launch template of the region launches, and "AMI TEMPLATE(rollback)" for the AMI a
# template records as its environment's rollback target (tag PreviousAmi, written by
# apply.sh). Every template counts, not only those tagged with this project: one deployed
# under another project name, or by another tool, must not lose its AMI.
images_in_use() {
  local templates rows id name versions
  templates=$(aws ec2 describe-launch-templates --region "$region" --output json) ||
    die "step 'list launch templates (aws ec2 describe-launch-templates)' failed"
  rows=$(jq -r '.LaunchTemplates[]? | "\(.LaunchTemplateId) \(.LaunchTemplateName)"' <<<"$templates")
  [ -n "$rows" ] || return 0
  jq -r '.LaunchTemplates[]? | .LaunchTemplateName as $name
    | .Tags[]? | select(.Key == "PreviousAmi") | "\(.Value) \($name)(rollback)"' <<<"$templates"
  while read -r id name; do
    versions=$(aws ec2 describe-launch-template-versions --region "$region" --launch-template-id "$id" \
      --versions "\$Latest" "\$Default" --output json </dev/null) ||
      die "step 'read launch template $name (aws ec2 describe-launch-template-versions)' failed"
    jq -r --arg name "$name" '.LaunchTemplateVersions[]?.LaunchTemplateData.ImageId // empty | "\(.) \($name)"' <<<"$versions"
  done <<<"$rows"
}

# delete_snapshot ID: a snapshot can stay in use a few seconds after its AMI is deregistered.
delete_snapshot() {
  local attempt
  for attempt in 1 2 3; do
    if aws ec2 delete-snapshot --region "$region" --snapshot-id "$1" </dev/null; then
      return 0
    fi
    if [ "$attempt" -lt 3 ]; then sleep 5; fi
  done
  return 1
}

# remove_unused_amis: deregister this project's AMIs that no launch template uses, and
# delete their snapshots.
remove_unused_amis() {
  local images rows in_use image name snapshots users snapshot removed=0 kept=0 problems=0
  images=$(aws ec2 describe-images --region "$region" --owners self \
    --filters "Name=tag:Project,Values=$PROJECT_NAME" --output json) ||
    die "step 'list AMIs (aws ec2 describe-images)' failed"
  rows=$(jq -r '.Images[]? | [.ImageId, (.Name // ""), ([.BlockDeviceMappings[]?.Ebs.SnapshotId // empty] | join(" "))] | @tsv' <<<"$images")
  if [ -z "$rows" ]; then
    note "no $PROJECT_NAME AMIs in $region"
    return 0
  fi
  in_use=$(images_in_use)
  while IFS=$'\t' read -r image name snapshots; do
    users=$(awk -v id="$image" '$1 == id { print $2 }' <<<"$in_use" | sort -u | paste -sd, -)
    if [ -n "$users" ]; then
      if [[ $users == *"(rollback)"* ]]; then
        note "keeping $image ($name): launch template $users of another environment still uses it ((rollback): the AMI ./apply.sh --rollback would deploy again)"
      else
        note "keeping $image ($name): launch template $users of another environment still uses it"
      fi
      kept=$((kept + 1))
      continue
    fi
    if ! aws ec2 deregister-image --region "$region" --image-id "$image" </dev/null >/dev/null; then
      error "could not deregister $image ($name)"
      problems=$((problems + 1))
      continue
    fi
    note "deregistered $image ($name)"
    removed=$((removed + 1))
    for snapshot in $snapshots; do
      if delete_snapshot "$snapshot" >/dev/null; then
        note "deleted snapshot $snapshot of $image"
      else
        error "could not delete snapshot $snapshot of $image: delete it with aws ec2 delete-snapshot --region $region --snapshot-id $snapshot"
        problems=$((problems + 1))
      fi
    done
  done <<<"$rows"
  note "AMIs in $region: $removed removed, $kept kept"
  [ "$problems" -eq 0 ] || die "$problems AMI(s) or snapshot(s) could not be removed (see above)"
}

note "destroying $PROJECT_NAME-$env_name"
region=
run_step "terraform init" tf init -input=false >&2
destroy_stack

if [ "$keep_amis" = 1 ]; then
  note "--keep-amis: AMIs and snapshots left in place"
else
  [ -n "$region" ] || region=$(aws_region) || die "no AWS region for the AMIs: export AWS_REGION"
  remove_unused_amis
fi
note "$PROJECT_NAME-$env_name is gone"
