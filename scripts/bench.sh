#!/usr/bin/env bash
# Local benchmark matrix of the release binary on SQLite, written to docs/BENCHMARKS.md:
# /gtg throughput and p99; /gtg p99 while /computation saturates every worker;
# /computation latency (against the pure chain, measured by criterion) and saturation
# throughput; candidate write and read throughput and p99; idle memory; start to first 200;
# and, under a flood of clients retrying refused computations at once (200 connections on
# a full queue), the useful /computation throughput kept, the 503s answered, /gtg p99 and
# the log lines written, unpinned and with the service pinned to one core (taskset).
#
#   scripts/bench.sh [--duration SECS] [--repeat N] [--binary PATH] [--out FILE] [--label TEXT]
#                    [--only matrix|flood]
#
# Every figure is the median of --repeat passes (default 3), each against a fresh
# service, with the range beside it: single runs on a shared machine vary by a quarter.
# --binary benchmarks another build (for A/B comparisons) instead of building
# target/release/candidates. All traffic goes to 127.0.0.1 and every run is bounded.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

duration=10
repeat=3
binary=''
out=$REPO_ROOT/docs/BENCHMARKS.md
label=release
only=''
while [ $# -gt 0 ]; do
  case $1 in
    --duration) need_value "$@"; duration=$2; shift 2 ;;
    --repeat) need_value "$@"; repeat=$2; shift 2 ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --out) need_value "$@"; out=$2; shift 2 ;;
    --label) need_value "$@"; label=$2; shift 2 ;;
    --only) need_value "$@"; only=$2; shift 2 ;;
    -h | --help) usage ;;
    *) error "unknown argument $1"; usage ;;
  esac
done
is_count "$duration" && [ "$duration" -le 300 ] || die "--duration must be 1 to 300 seconds"
is_count "$repeat" && [ "$repeat" -le 20 ] || die "--repeat must be 1 to 20"
for group in ${only//,/ }; do
  case $group in
    matrix | flood) ;;
    *) die "--only takes matrix, flood or both (comma-separated), not '$group'" ;;
  esac
done

require_cmd cargo "install Rust from https://rustup.rs"
require_cmd python3 "install Python 3"
ensure_cargo_tool oha oha "$OHA_VERSION"
cd "$REPO_ROOT"
if [ -z "$binary" ]; then
  note "building the release binary"
  cargo build --quiet --release -p candidates
  binary=$REPO_ROOT/target/release/candidates
fi
[ -x "$binary" ] || die "no executable at $binary"

case ,$only, in
  ,, | *,matrix,*)
    note "measuring the pure chain with criterion"
    bench_output=$(cargo bench --quiet -p candidates --bench computation -- --noplot) ||
      die "cargo bench failed (its output is above)"
    criterion=$(awk '/time:/ { gsub(/[\[\]]/, ""); print $4, $5; exit }' <<<"$bench_output")
    [ -n "$criterion" ] || die "criterion printed no time: $bench_output"
    read -r value unit <<<"$criterion"
    case $unit in
      ns) factor=1 ;; µs | us) factor=1000 ;; ms) factor=1000000 ;; s) factor=1000000000 ;;
      *) die "unexpected criterion unit '$unit'" ;;
    esac
    chain_ns=$(python3 -c "print($value * $factor)")
    ;;
  *) chain_ns=0 ;;
esac
case ,$only, in
  ,, | *,flood,*) require_cmd taskset "install util-linux (taskset pins the flood's service and load)" ;;
esac

note "running the load matrix $repeat time(s), ${duration}s per run"
python3 "$REPO_ROOT/scripts/lib/bench.py" "$binary" "$chain_ns" "$duration" "$out" "$label" "$repeat" "$only"
note "written to ${out#"$REPO_ROOT"/}"
