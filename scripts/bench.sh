#!/usr/bin/env bash
# The benchmarks of the shipped binary (Cargo.toml's dist profile), written to
# docs/BENCHMARKS.md. Groups (--only):
#   matrix        /gtg throughput and p99; /gtg p99 while /computation saturates every
#                 worker; /computation latency and saturation throughput; candidate writes
#                 and reads on SQLite; memory; start to first 200 (unpinned)
#   flood         200 clients retrying refused computations at once: the useful throughput
#                 kept, the 503s, /gtg p99, the log lines (unpinned, then pinned to one core)
#   cost          server CPU per request with the server pinned to core 0 and its load (and
#                 moto) on core 1, beside its floor measured the same way: /gtg against a
#                 bare axum server (benches/bare_axum.rs), GET and POST /candidate on
#                 DynamoDB (moto) against the SDK's own GetItem/PutItem loop with the
#                 service's client configuration (benches/dynamodb_floor.rs), /computation
#                 against the MD5 chain (criterion, pinned)
#   writes        new-name POSTs to SQLite (synchronous=FULL) from 16 connections, pinned:
#                 throughput, p99, writes per transaction
#   memory        resident memory idle and with 5,000 idle keep-alive connections
#   instructions  user-space instructions per /gtg request under valgrind's callgrind,
#                 against the bare axum server: the comparison that machine noise spares
#   probe         what the second adversarial probe measured, on this build and on the
#                 --baseline build side by side, pinned: full listings of 100,000
#                 candidates 20, 60 and 150 at once, and 150 clients listing while POSTs
#                 run; POST throughput while 32 connections poll /gtg?details; resident
#                 memory over ten slowloris bursts of 3,000 connections; log bytes of 10 s
#                 of store outage at 50 connections, and /gtg answered meanwhile with a
#                 log reader that never reads (not in the default set)
#
#   scripts/bench.sh [--duration SECS] [--repeat N] [--binary PATH] [--baseline PATH]
#                    [--out FILE] [--label TEXT] [--only GROUP[,GROUP...]]
#
# Every figure is the median of --repeat passes (default 3), each against a fresh
# server, with the range beside it: single runs on a shared machine vary by a quarter.
# --binary benchmarks another build (for A/B comparisons) instead of building
# target/dist/candidates; the floors are always built from this tree, with the bench
# profile, which matches dist. --baseline names the build the probe group measures beside
# it (a dist build of an older commit, say). moto comes from .tools/ (scripts/test.sh
# installs it). All traffic goes to 127.0.0.1 and every run is
# bounded.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

duration=10
repeat=3
binary=''
baseline=''
out=$REPO_ROOT/docs/BENCHMARKS.md
label=release
only=''
while [ $# -gt 0 ]; do
  case $1 in
    --duration) need_value "$@"; duration=$2; shift 2 ;;
    --repeat) need_value "$@"; repeat=$2; shift 2 ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --baseline) need_value "$@"; baseline=$2; shift 2 ;;
    --out) need_value "$@"; out=$2; shift 2 ;;
    --label) need_value "$@"; label=$2; shift 2 ;;
    --only) need_value "$@"; only=$2; shift 2 ;;
    -h | --help) usage ;;
    *) error "unknown argument $1"; usage ;;
  esac
done
is_count "$duration" && [ "$duration" -le 300 ] || die "--duration must be 1 to 300 seconds"
is_count "$repeat" && [ "$repeat" -le 20 ] || die "--repeat must be 1 to 20"
groups=${only:-matrix,flood,cost,writes,memory,instructions}
for group in ${groups//,/ }; do
  case $group in
    matrix | flood | cost | writes | memory | instructions | probe) ;;
    *) die "--only takes matrix, flood, cost, writes, memory, instructions, probe (comma-separated), not '$group'" ;;
  esac
done
wants() { [[ ,$groups, == *,$1,* ]]; }

require_cmd cargo "install Rust from https://rustup.rs"
require_cmd python3 "install Python 3"
ensure_cargo_tool oha oha "$OHA_VERSION"
if wants flood || wants cost || wants writes || wants instructions || wants probe; then
  require_cmd taskset "install util-linux (taskset pins the server and its load to separate cores)"
fi
if wants instructions; then
  require_cmd valgrind "install valgrind (apt-get install valgrind) for the instruction counts"
fi
if wants cost; then
  export PATH="$TOOLS_DIR/bin:$PATH"
  require_cmd moto_server "run ./scripts/test.sh once: it installs moto into ${TOOLS_DIR#"$REPO_ROOT"/}"
fi
cd "$REPO_ROOT"
if [ -z "$binary" ]; then
  note "building the shipped binary (cargo build --profile dist)"
  cargo build --quiet --profile dist -p candidates
  binary=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/dist/candidates
fi
[ -x "$binary" ] || die "no executable at $binary"
if [ -n "$baseline" ]; then
  [ -x "$baseline" ] || die "no executable at $baseline (--baseline)"
  wants probe || die "--baseline is measured by the probe group only: add --only probe"
fi

# The floors are what the matrix, cost and instructions groups compare against.
floors=''
if wants matrix || wants cost || wants instructions; then
  note "building the floors (the service's bench targets)"
  floors=$(cargo bench --quiet --no-run -p candidates --bench computation --bench bare_axum \
    --bench dynamodb_floor --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable"):
        print(message["target"]["name"], message["executable"])
') || die "building the bench targets failed"
fi
floor() { awk -v name="$1" '$1 == name { print $2 }' <<<"$floors"; }

chain_ns=0
if wants matrix || wants cost; then
  note "measuring the pure chain with criterion, pinned to core 0"
  bench_output=$(taskset -c 0 "$(floor computation)" --bench --noplot) ||
    die "the criterion benchmark failed (its output is above)"
  criterion=$(awk '/time:/ { gsub(/[\[\]]/, ""); print $4, $5; exit }' <<<"$bench_output")
  [ -n "$criterion" ] || die "criterion printed no time: $bench_output"
  read -r value unit <<<"$criterion"
  case $unit in
    ns) factor=1 ;; µs | us) factor=1000 ;; ms) factor=1000000 ;; s) factor=1000000000 ;;
    *) die "unexpected criterion unit '$unit'" ;;
  esac
  chain_ns=$(python3 -c "print($value * $factor)")
fi

note "running $groups $repeat time(s), ${duration}s per load run"
python3 "$REPO_ROOT/scripts/python/bench.py" --binary "$binary" --out "$out" --label "$label" \
  --duration "$duration" --repeat "$repeat" --only "$groups" --chain-ns "$chain_ns" \
  --bare-axum "$(floor bare_axum)" --dynamodb-floor "$(floor dynamodb_floor)" \
  ${baseline:+--baseline "$baseline"}
note "written to ${out#"$REPO_ROOT"/}"
