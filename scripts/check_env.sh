#!/usr/bin/env bash
# Checks that this machine and the AWS account can deploy the stack, before ./apply.sh
# spends anything (apply.sh runs it first, with its own options).
#
#   scripts/check_env.sh [--no-build] [--no-bake] [--tools-only] [--packer-subnet SUBNET]
#                        [-var NAME=VALUE | -var-file=FILE]...
#
# --no-build       leave out the build tools (apply.sh --binary PATH)
# --no-bake        nothing is baked (apply.sh --rollback): leave out Packer's network,
#                  build instance and key pair
# --tools-only     this machine only: no account check (apply.sh --skip-preflight)
# --packer-subnet  the subnet apply.sh --packer-subnet bakes in
# -var, -var-file  the values the apply will use (as apply.sh passes them to Terraform)
#
# This machine: aws, packer (1.9+, for the HCL2 template's required_plugins), terraform
# (1.5+), curl, jq, python3 (3.9+), git, sha256sum, and unless --no-build cargo (the
# workspace's rust-version) and readelf; a region (AWS_REGION, AWS_DEFAULT_REGION or the
# profile's) and credentials that work (aws sts get-caller-identity).
# The account (scripts/lib/preflight.sh), with the instance_type, max_size and az_count
# that terraform console reads from these -var/-var-file values: a subnet for Packer's
# build instance (the default VPC or --packer-subnet); Auto Scaling's service-linked role,
# or the right to create it; the default EBS key, AWS managed or usable by that role; the
# writes and one read per service simulated (iam simulate-principal-policy), or when the
# caller may not simulate, one read per service tried; the instance type and the zones
# that offer it; an Amazon Linux 2023 image for its architecture; the On-Demand vCPU
# quota; and EC2's own dry runs of what Packer and Terraform create. Nothing is created.
# What cannot be checked is said on an "UNVERIFIED" NOTE. The policy an operator needs is
# in docs/iam/.
# One NOTE: line per check that passes, one ERROR: line saying how to fix each one that
# fails; every check runs, then the exit status is 1 when any failed.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/preflight.sh
source "$REPO_ROOT/scripts/lib/preflight.sh"


build=1
bake=1
account_checks=1
packer_subnet=
tf_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0; shift ;;
    --no-bake) bake=0; shift ;;
    --tools-only) account_checks=0; shift ;;
    --packer-subnet) need_value "$@"; packer_subnet=$2; shift 2 ;;
    --packer-subnet=*) need_value --packer-subnet "${1#*=}"; packer_subnet=${1#*=}; shift ;;
    -var) need_value "$@"; tf_args+=(-var "$2"); shift 2 ;;
    -var=*) need_value -var "${1#*=}"; tf_args+=("$1"); shift ;;
    -var-file) need_value "$@"; tf_args+=("$(absolute_var_file "-var-file=$2")"); shift 2 ;;
    -var-file=*) need_value -var-file "${1#*=}"; tf_args+=("$(absolute_var_file "$1")"); shift ;;
    -h | --help) usage ;;
    -*) error "unknown option $1"; usage ;;
    *) error "unexpected argument $1"; usage ;;
  esac
done

failures=0
passed() { note "$*"; }
failed() {
  error "$*"
  failures=$((failures + 1))
}

# version_of COMMAND: the first dotted version number the command reports about itself.
version_of() {
  local output
  case $1 in
    # Terraform prints CLI configuration warnings on stderr; CHECKPOINT_DISABLE stops
    # HashiCorp tools from asking the network whether they are up to date.
    terraform | packer) output=$(CHECKPOINT_DISABLE=1 "$1" version 2>/dev/null) || true ;;
    # AWS CLI v1 prints its version on stderr.
    *) output=$("$1" --version 2>&1) || true ;;
  esac
  [[ $output =~ ([0-9]+\.[0-9]+(\.[0-9]+)?) ]] && printf '%s\n' "${BASH_REMATCH[1]}"
}

# check_tool COMMAND MINIMUM HOW-TO-INSTALL: present, and at least MINIMUM (empty: any).
check_tool() {
  local name=$1 minimum=$2 fix=$3 version
  if ! command -v "$name" >/dev/null 2>&1; then
    failed "$name is not installed: $fix"
    return 0
  fi
  version=$(version_of "$name") || version=
  if [ -z "$version" ]; then
    failed "$name ($(command -v "$name")) does not report a version: reinstall it; $fix"
  elif [ -n "$minimum" ] && ! version_ge "$version" "$minimum"; then
    failed "$name $version is too old, $minimum or newer is needed: $fix"
  else
    passed "$name $version${minimum:+ (>= $minimum)}: $(command -v "$name")"
  fi
}

check_tool aws "" "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
if [ "$bake" = 1 ]; then
  check_tool packer 1.9 "install Packer 1.9 or newer: https://developer.hashicorp.com/packer/install"
else
  note "--no-bake: packer is not checked"
fi
check_tool terraform 1.5 "install Terraform 1.5 or newer: https://developer.hashicorp.com/terraform/install"
check_tool curl "" "install curl (Debian: apt-get install curl)"
check_tool jq "" "install jq (Debian: apt-get install jq; macOS: brew install jq)"
check_tool python3 3.9 "install Python 3.9 or newer (Debian: apt-get install python3 python3-venv)"
check_tool git "" "install git (Debian: apt-get install git)"
check_tool sha256sum "" "install GNU coreutils (macOS: brew install coreutils)"

if [ "$build" = 1 ]; then
  rust_version=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$REPO_ROOT/Cargo.toml" | head -n 1)
  check_tool cargo "$rust_version" "install Rust from https://rustup.rs (rustup update for a newer one), or build elsewhere and run ./apply.sh --binary PATH"
  check_tool readelf "" "install binutils (Debian: apt-get install binutils)"
  note "cargo-zigbuild and zig are not needed here: scripts/build_release.sh installs them (cargo install, and a venv under .tools/) when they are missing"
else
  note "--no-build: cargo and the build tools are not checked"
fi

# The region: the same order apply.sh follows.
region=
if [ -n "${AWS_REGION:-}" ]; then
  region=$AWS_REGION origin=AWS_REGION
elif [ -n "${AWS_DEFAULT_REGION:-}" ]; then
  region=$AWS_DEFAULT_REGION origin=AWS_DEFAULT_REGION
elif command -v aws >/dev/null 2>&1 && region=$(aws configure get region 2>/dev/null) && [ -n "$region" ]; then
  origin="the AWS CLI profile ${AWS_PROFILE:-default}"
else
  region=
fi
if [ -z "$region" ]; then
  failed "no AWS region: export AWS_REGION=eu-west-3 (for example), or run aws configure set region REGION"
elif ! [[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]]; then
  failed "'$region' (from $origin) is not an AWS region name: set AWS_REGION to one such as us-east-1"
  region=
else
  passed "AWS region $region (from $origin)"
fi

account=
arn=
if command -v aws >/dev/null 2>&1; then
  if identity=$(aws sts get-caller-identity ${region:+--region "$region"} --query '[Account, Arn]' --output text 2>&1); then
    read -r account arn <<<"$identity"
    passed "AWS credentials work: account ${account:-?}, ${arn:-?}"
  else
    reason=$(printf '%s\n' "$identity" | sed '/^[[:space:]]*$/d' | tail -n 1)
    failed "AWS credentials do not work (aws sts get-caller-identity: ${reason:-no message}): run aws configure, or aws sso login --profile NAME and export AWS_PROFILE=NAME, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
  fi
else
  failed "AWS credentials cannot be checked without the AWS CLI (see above)"
fi

if [ "$account_checks" = 0 ]; then
  note "--tools-only: the AWS account was not checked"
elif [ -z "$account" ] || [ -z "$region" ] || ! command -v jq >/dev/null 2>&1 || ! command -v terraform >/dev/null 2>&1; then
  note "the AWS account cannot be checked without a region, working credentials, jq and terraform (see above)"
else
  preflight_account
fi

if [ "$failures" -gt 0 ]; then
  error "$failures check(s) failed: fix them, then run scripts/check_env.sh again; nothing was created"
  exit 1
fi
if [ "$account_checks" = 0 ]; then
  note "this machine is ready to deploy"
else
  note "this machine and the AWS account are ready to deploy"
fi
