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
# Every name in AWS starts with this, followed by the environment.
PROJECT_NAME=axum-asg
export PROJECT_NAME

note() { printf 'NOTE: %s\n' "$*" >&2; }
error() { printf 'ERROR: %s\n' "$*" >&2; }
die() {
  error "$@"
  exit 1
}

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

# tf_output ENV NAME: one Terraform output of environment ENV (its workspace), without
# switching the workspace the user has selected.
tf_output() {
  local env=$1 name=$2
  require_cmd terraform "install Terraform 1.5+ from https://developer.hashicorp.com/terraform/install"
  TF_WORKSPACE=$env terraform -chdir="$REPO_ROOT/infra" output -raw "$name"
}

# wait_for_http URL SECONDS: poll until URL answers 200, or fail after SECONDS.
wait_for_http() {
  local url=$1 seconds=$2 deadline
  deadline=$((SECONDS + seconds))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
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
