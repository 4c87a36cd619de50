# shellcheck shell=bash
# Helpers shared by every script of the project. Source it, do not run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Output convention: progress and problems go to stderr as NOTE:/ERROR: lines, so a
# script's standard output stays free for its results.

# The repository root, whatever the caller's working directory.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export REPO_ROOT
# Project-local tools (Python venvs, npm packages): git-ignored, never global.
TOOLS_DIR=${CANDIDATES_TOOLS_DIR:-$REPO_ROOT/.tools}
export TOOLS_DIR
# Every name in AWS starts with the project, followed by the environment. This is the one
# place it is chosen: apply.sh gives it to Packer (the AMI's name and Project tag) and to
# Terraform (var.project: names and tags), and destroy.sh looks AMIs up by it. Set
# AXUM_ASG_PROJECT to run a second copy of the stack in the same account. Its default is
# also the default of var.project (infra/) and of Packer's project variable; the test suite
# checks that the three agree.
PROJECT_NAME=${AXUM_ASG_PROJECT:-axum-asg}
if ! [[ $PROJECT_NAME =~ ^[a-z][a-z0-9-]{0,18}[a-z0-9]$ ]]; then
  printf 'ERROR: AXUM_ASG_PROJECT=%s is not a project name: 2 to 20 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen\n' "$PROJECT_NAME" >&2
  exit 2
fi
export PROJECT_NAME
# Tools used by more than one script, pinned in one place.
OHA_VERSION=1.16.0
PLOT_REQUIREMENTS=matplotlib==3.11.2
export OHA_VERSION PLOT_REQUIREMENTS

note() { printf 'NOTE: %s\n' "$*" >&2; }
error() { printf 'ERROR: %s\n' "$*" >&2; }
die() {
  error "$@"
  exit 1
}

# usage: print the running script's header comment (its usage text, kept in one place at
# the top of the file) to stderr and exit 2, the status of a bad invocation.
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

# need_value OPTION ARGS...: the one way a script refuses an option that takes a value but
# comes last or with an empty value. Call it in the option loop with the loop's arguments,
# option first: `--env) need_value "$@"; env_name=$2; shift 2 ;;`. It prints an ERROR and
# the usage, and exits 2.
need_value() {
  [ $# -ge 2 ] && [ -n "$2" ] && return 0
  error "$1 needs a value"
  usage
}

# is_count VALUE: a positive whole number.
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

# require_cmd NAME HOW-TO-INSTALL: fail with a message that says how to fix it.
require_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed: $2"
}

# A short hash of its arguments: used as a stamp so installs re-run only on change.
stamp_of() {
  printf '%s\n' "$@" | sha256sum | cut -c1-16
}

# ensure_venv NAME PIP-SPEC...: a virtual environment under .tools/venvs/NAME with
# exactly these requirements; quick when it is already there.
ensure_venv() {
  local name=$1
  shift
  local venv=$TOOLS_DIR/venvs/$name stamp
  stamp=$(stamp_of "$@")
  if [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$stamp" ]; then
    return 0
  fi
  require_cmd python3 "install Python 3.9 or newer"
  note "installing $name tools into ${venv#"$REPO_ROOT"/}: $*"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  printf '%s' "$stamp" >"$venv/.stamp"
}

# venv_bin NAME EXECUTABLE: the path of an executable inside venv NAME.
venv_bin() {
  printf '%s/venvs/%s/bin/%s' "$TOOLS_DIR" "$1" "$2"
}

# ensure_cargo_tool BINARY CRATE VERSION: `cargo install --locked` when the binary is
# missing or reports another version.
ensure_cargo_tool() {
  local binary=$1 crate=$2 version=$3
  if command -v "$binary" >/dev/null 2>&1 && "$binary" --version 2>/dev/null | grep -qF "$version"; then
    return 0
  fi
  require_cmd cargo "install Rust from https://rustup.rs"
  note "installing $crate $version with cargo (a few minutes, once)"
  cargo install --quiet --locked "$crate@$version"
}

# ensure_npm_tool PACKAGE VERSION: an npm package under .tools/npm; its binaries land
# in .tools/npm/node_modules/.bin.
ensure_npm_tool() {
  local package=$1 version=$2 prefix=$TOOLS_DIR/npm
  if [ -f "$prefix/node_modules/$package/package.json" ] &&
    grep -q "\"version\": \"$version\"" "$prefix/node_modules/$package/package.json"; then
    return 0
  fi
  require_cmd npm "install Node.js 18 or newer (Debian: apt-get install nodejs npm)"
  note "installing $package@$version into ${prefix#"$REPO_ROOT"/}"
  mkdir -p "$prefix"
  npm install --silent --no-audit --no-fund --prefix "$prefix" "$package@$version" >/dev/null
}

# ensure_apt_package PACKAGE [COMMAND]: a Debian package, installed only when its
# command is missing and only when we are root; otherwise say what to run.
ensure_apt_package() {
  local package=$1 command=${2:-$1}
  command -v "$command" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "'$command' is missing: install the '$package' package (sudo apt-get install $package)"
  fi
  note "installing Debian package $package"
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
}

# tf ARGS...: terraform on the stack's root module (infra/), whatever the caller's folder.
tf() { terraform -chdir="$REPO_ROOT/infra" "$@"; }

# absolute_var_file ARG: a -var-file=FILE argument with FILE made absolute: Terraform runs
# in infra/ (-chdir), while the caller named FILE from its own folder.
absolute_var_file() {
  case $1 in
    -var-file=/*) printf '%s\n' "$1" ;;
    -var-file=*) printf '%s\n' "-var-file=$PWD/${1#-var-file=}" ;;
    *) printf '%s\n' "$1" ;;
  esac
}

# tf_output ENV NAME: one Terraform output of environment ENV (its workspace), without
# switching the workspace the user has selected.
tf_output() {
  local env=$1 name=$2
  require_cmd terraform "install Terraform 1.5+ from https://developer.hashicorp.com/terraform/install"
  TF_WORKSPACE=$env tf output -raw "$name"
}

# lb_route ENV URL: the --connect-to value (HOST:PORT:TARGET-HOST:TARGET-PORT, understood by
# curl and oha) that sends URL's requests to ENV's load balancer, or nothing when URL names
# the load balancer itself. With a domain_name (HTTPS) this reaches a new load balancer
# before DNS points the name at it, while TLS is still verified against the name the
# certificate covers. CANDIDATES_LB_ADDRESS=HOST:PORT reaches the load balancer at that
# address instead of its DNS name (the test suite's stand-in for the network path to AWS).
lb_route() {
  local env=$1 url=$2 rest host port alb target
  [[ $url =~ ^(https?)://([^/:]+)(:([0-9]+))?(/.*)?$ ]] || {
    error "'$url' is not an http(s) URL"
    return 1
  }
  host=${BASH_REMATCH[2]}
  port=${BASH_REMATCH[4]}
  if [ -z "$port" ]; then
    port=80
    [ "${BASH_REMATCH[1]}" = http ] || port=443
  fi
  alb=$(tf_output "$env" alb_dns_name) || return 1
  target=${CANDIDATES_LB_ADDRESS:-$alb:$port}
  rest="$host:$port"
  [ "$rest" = "$target" ] || printf '%s:%s\n' "$rest" "$target"
}

# auto_approve_in_ci FLAG-VALUE WHAT: 1 when FLAG-VALUE is 1 or CI=true (saying so), else 0.
# Terraform asks for confirmation unless told not to; CI has nobody to answer.
auto_approve_in_ci() {
  if [ "$1" = 0 ] && [ "${CI:-}" = true ]; then
    note "CI=true: Terraform $2 without asking"
    printf '1\n'
  else
    printf '%s\n' "$1"
  fi
}

# wait_for_http URL SECONDS [CURL-OPTION...]: poll until URL answers 200, or fail after
# SECONDS. The options go to every curl call (for example --connect-to).
wait_for_http() {
  local url=$1 seconds=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until curl -fsS -o /dev/null --max-time 2 "$@" "$url" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# link_tool PATH [NAME]: expose an installed executable as .tools/bin/NAME, the one
# folder the test suite puts on PATH.
link_tool() {
  local target=$1 name=${2:-$(basename "$1")}
  [ -x "$target" ] || die "expected an executable at $target"
  mkdir -p "$TOOLS_DIR/bin"
  ln -sfn "$target" "$TOOLS_DIR/bin/$name"
}

# version_ge A B: whether dotted version A is B or newer, part by part as numbers
# (1.10 is newer than 1.9; a missing part counts as 0).
version_ge() {
  local -a a b
  local i
  IFS=. read -r -a a <<<"$1"
  IFS=. read -r -a b <<<"$2"
  for i in 0 1 2; do
    if ((10#${a[i]:-0} > 10#${b[i]:-0})); then
      return 0
    elif ((10#${a[i]:-0} < 10#${b[i]:-0})); then
      return 1
    fi
  done
  return 0
}

# aws_region: the region the AWS CLI would use: AWS_REGION, then AWS_DEFAULT_REGION, then
# the profile's (`aws configure get region`). Fails, printing nothing, when none is set.
aws_region() {
  local region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
  if [ -z "$region" ] && command -v aws >/dev/null 2>&1; then
    region=$(aws configure get region 2>/dev/null) || region=
  fi
  [ -n "$region" ] || return 1
  printf '%s\n' "$region"
}

# check_env_name ENV: the rule of infra/network.tf for a workspace, i.e. an environment:
# lowercase letters, digits and hyphens, not "default", and "<project>-ENV" at most 32
# characters (load balancer and target group names). Prints the reason when it fails.
check_env_name() {
  local env=$1
  if [ "$env" = default ] || ! [[ $env =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]]; then
    error "'$env' is not an environment name: lowercase letters, digits and hyphens, not starting or ending with a hyphen, not 'default'"
    return 1
  fi
  if [ $((${#PROJECT_NAME} + 1 + ${#env})) -gt 32 ]; then
    error "'$PROJECT_NAME-$env' is longer than 32 characters (load balancer and target group names): shorten '$env'"
    return 1
  fi
}

# inputs_hash BINARY: SHA-256 of everything baked into the AMI: the service binary and every
# file under packer/ but manifest.json (template, variables, unit, install scripts), each
# with its path, in byte order of the paths, so the same inputs always give the same hash
# whatever their timestamps or the binary's location. apply.sh tags the AMI with it
# (InputsHash) and reuses an AMI whose tag matches instead of baking the same image again.
inputs_hash() {
  local binary=$1
  [ -f "$binary" ] || {
    error "inputs_hash: $binary is not a file"
    return 1
  }
  {
    printf '%s  binary\n' "$(sha256sum <"$binary" | cut -d' ' -f1)"
    (cd "$REPO_ROOT" && find packer -type f ! -path packer/manifest.json -print0 |
      LC_ALL=C sort -z | xargs -0 -r sha256sum)
  } | sha256sum | cut -d' ' -f1
}

# run_step NAME COMMAND...: run one step of a longer procedure; when it fails, stop the
# script with an ERROR naming the step and the command's exit status.
run_step() {
  local name=$1 status=0
  shift
  "$@" || status=$?
  [ "$status" -eq 0 ] || die "step '$name' failed (exit $status): see the output above; nothing after it was run"
}

# use_aws_region: AWS_REGION and AWS_DEFAULT_REGION both set to the region aws_region
# finds (the AWS CLI v1 reads only the second, the SDKs and CLI v2 the first), or fail.
use_aws_region() {
  local region
  region=$(aws_region) || die "no AWS region: set AWS_REGION (or a region in your AWS profile)"
  export AWS_REGION=$region AWS_DEFAULT_REGION=$region
}

# group_json REGION ASG: the Auto Scaling group as describe-auto-scaling-groups describes it
# (its launch template and version, its instances with theirs), or null when there is no
# such group.
group_json() {
  local groups
  groups=$(aws autoscaling describe-auto-scaling-groups --region "$1" --auto-scaling-group-names "$2" --output json) ||
    return 1
  jq '.AutoScalingGroups[0]' <<<"$groups"
}
