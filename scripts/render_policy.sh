#!/usr/bin/env bash
# Writes the operator's least-privilege IAM policies for this project's name: what apply.sh
# (with Packer and Terraform, the rollout and --rollback), validate.sh, scale.sh, logs.sh,
# destroy.sh, check_env.sh, rehearse.sh --load-from-cloudwatch and loadtest.sh's CPU
# reading need, and nothing else.
#
#   scripts/render_policy.sh [--out DIR]
#
# --out DIR   where to write them (default: the current folder)
#
# The policies are docs/iam/operator-ec2.json and docs/iam/operator-stack.json, written for
# the default project name axum-asg; this writes both with AXUM_ASG_PROJECT in its place
# (names, name prefixes in ARNs, the Project tag), as <project>-operator-ec2.json and
# <project>-operator-stack.json, and prints the AWS CLI commands that create them as
# managed policies and attach them to a user (a role or a group works the same way). Two
# policies because one managed policy holds at most 6,144 characters.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"


out=.
while [ $# -gt 0 ]; do
  case $1 in
    --out) need_value "$@"; out=$2; shift 2 ;;
    -h | --help) usage ;;
    -*) error "unknown option $1"; usage ;;
    *) error "unexpected argument $1"; usage ;;
  esac
done
require_cmd jq "install jq (Debian: apt-get install jq; macOS: brew install jq)"
[ -d "$out" ] || die "--out $out: no such folder"

# The shipped files name the project axum-asg in exactly the places a name goes: every
# occurrence becomes the project's name.
for part in ec2 stack; do
  target=$out/$PROJECT_NAME-operator-$part.json
  jq --arg project "$PROJECT_NAME" 'walk(if type == "string" then gsub("axum-asg"; $project) else . end)' \
    "$REPO_ROOT/docs/iam/operator-$part.json" >"$target.partial.$$"
  size=$(jq -c . "$target.partial.$$" | tr -d '[:space:]' | wc -c)
  if [ "$size" -gt 6144 ]; then
    rm -f "$target.partial.$$"
    die "$target would hold $size characters, more than the 6,144 of a managed policy"
  fi
  mv -f "$target.partial.$$" "$target"
  note "wrote $target ($size characters)"
done
cat <<EOF
aws iam create-policy --policy-name $PROJECT_NAME-operator-ec2 --policy-document file://$out/$PROJECT_NAME-operator-ec2.json
aws iam create-policy --policy-name $PROJECT_NAME-operator-stack --policy-document file://$out/$PROJECT_NAME-operator-stack.json
aws iam attach-user-policy --user-name USER --policy-arn arn:aws:iam::ACCOUNT:policy/$PROJECT_NAME-operator-ec2
aws iam attach-user-policy --user-name USER --policy-arn arn:aws:iam::ACCOUNT:policy/$PROJECT_NAME-operator-stack
EOF
