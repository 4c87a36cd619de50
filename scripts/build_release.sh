#!/usr/bin/env bash
# Build the release binary of the service so that it runs on Amazon Linux 2023.
#
#   scripts/build_release.sh
#
# Amazon Linux 2023 ships glibc 2.34, older than most build machines, so the binary is
# linked by cargo-zigbuild against glibc 2.34's symbol versions (zig comes from PyPI's
# `ziglang` package, in a project venv). Writes dist/candidates and
# dist/candidates.sha256, checks that no symbol needs a newer glibc, and prints the
# binary's path on standard output. Built with Cargo.toml's `dist` profile (fat LTO, one
# codegen unit: the shipped binary; `cargo run --release` stays quick to build), into
# <target>/x86_64-unknown-linux-gnu/dist/. Honours CARGO_TARGET_DIR (default: target/).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly CARGO_ZIGBUILD_VERSION=0.24.1
# The zig release that cargo-zigbuild 0.24.1's own container image is built with.
readonly ZIGLANG_VERSION=0.16.0
readonly RUST_TARGET=x86_64-unknown-linux-gnu
# Amazon Linux 2023's glibc.
readonly GLIBC_VERSION=2.34

# highest_glibc FILE: the newest GLIBC_x.y[.z] symbol version FILE needs, or nothing.
highest_glibc() {
  readelf -V --wide "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1
}

require_cmd cargo "install Rust from https://rustup.rs"
require_cmd readelf "install binutils (Debian: apt-get install binutils)"
require_cmd sha256sum "install coreutils"
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$RUST_TARGET"; then
  note "adding the Rust target $RUST_TARGET"
  rustup target add "$RUST_TARGET"
fi
ensure_cargo_tool cargo-zigbuild cargo-zigbuild "$CARGO_ZIGBUILD_VERSION"
ensure_venv zig "ziglang==$ZIGLANG_VERSION"
# cargo-zigbuild runs `python -m ziglang` when this Python has the package, so no
# `zig` needs to be on PATH.
CARGO_ZIGBUILD_PYTHON_PATH=$(venv_bin zig python)
export CARGO_ZIGBUILD_PYTHON_PATH

target_dir=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
dist=$REPO_ROOT/dist
note "building candidates for $RUST_TARGET with glibc $GLIBC_VERSION (cargo-zigbuild $CARGO_ZIGBUILD_VERSION, zig $ZIGLANG_VERSION)"
started=$SECONDS
(
  cd "$REPO_ROOT"
  CARGO_TARGET_DIR=$target_dir cargo zigbuild --profile dist --locked \
    -p candidates --bin candidates --target "$RUST_TARGET.$GLIBC_VERSION"
)
built=$target_dir/$RUST_TARGET/dist/candidates
[ -x "$built" ] || die "cargo zigbuild finished but $built is missing"

needed=$(highest_glibc "$built")
[ -n "$needed" ] || die "$built needs no GLIBC_ symbol version: not a glibc binary?"
version_ge "$GLIBC_VERSION" "$needed" ||
  die "$built needs glibc $needed, newer than Amazon Linux 2023's $GLIBC_VERSION"

mkdir -p "$dist"
install -m 0755 "$built" "$dist/candidates.partial"
mv -f "$dist/candidates.partial" "$dist/candidates"
(cd "$dist" && sha256sum candidates >candidates.sha256.partial && mv -f candidates.sha256.partial candidates.sha256)
note "built in $((SECONDS - started)) s; needs glibc $needed at most; sha256 $(cut -d' ' -f1 "$dist/candidates.sha256")"
printf '%s\n' "$dist/candidates"
