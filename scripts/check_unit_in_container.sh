#!/usr/bin/env bash
# Runs the release binary under the real packer/files/candidates.service, with every
# hardening option in force, inside a throw-away systemd-nspawn container booted from
# an overlay of this machine's root (no network but its own loopback), and checks that
# the service works there: answers HTTP, stores in its state folder, lowers its
# computation threads to nice 10, runs unprivileged under seccomp, and on SIGTERM drains
# (the health path answers 503) and stops cleanly within its drain bounds. Its log lines
# go to /var/log/candidates/service.log, the file the CloudWatch agent ships.
#
#   sudo scripts/check_unit_in_container.sh [BINARY]   # default: dist/candidates
#
# Needs root, systemd-nspawn (Debian: systemd-container), overlayfs and curl. Nothing
# is left behind: the container's writes go to a tmpfs in a private mount namespace.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

binary=$(realpath "${1:-$REPO_ROOT/dist/candidates}")
unit=$REPO_ROOT/packer/files/candidates.service
[ -x "$binary" ] || die "no executable at $binary: build it with scripts/build_release.sh"
[ "$(id -u)" -eq 0 ] || die "run as root: systemd-nspawn and overlay mounts need it"
ensure_apt_package systemd-container systemd-nspawn
require_cmd curl "install curl (Debian: apt-get install curl)"
require_cmd unshare "install util-linux"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
mkdir -p "$work/out" "$work/dropin" "$work/logs"

# The service user, as packer/scripts/install.sh creates it on the image.
cp /etc/passwd "$work/passwd"
cp /etc/group "$work/group"
echo 'candidates:x:990:990:Candidates API:/var/lib/candidates:/usr/sbin/nologin' >>"$work/passwd"
echo 'candidates:x:990:' >>"$work/group"

# What user data writes on EC2, minus DynamoDB: the SQLite fallback in the state folder.
cat >"$work/candidates.env" <<'EOF'
CANDIDATES_LISTEN=127.0.0.1:8000
CANDIDATES_INSTANCE_ID=i-0container0check
CANDIDATES_SHUTDOWN_DRAIN_SECS=1
CANDIDATES_REQUEST_TIMEOUT_SECS=10
CANDIDATES_LOG_FORMAT=json
CANDIDATES_COMPUTATION_WORKERS=2
EOF

# A container cannot raise its hard open-files limit above the one it inherits.
hard_nofile=$(ulimit -Hn)
if [ "$hard_nofile" != unlimited ] && [ "$hard_nofile" -lt 65536 ]; then
  note "this machine's hard open-files limit is $hard_nofile: the container uses it instead of the unit's"
  printf '[Service]\nLimitNOFILE=%s\n' "$hard_nofile" >"$work/dropin/limits.conf"
fi

cat >"$work/check.service" <<'EOF'
[Unit]
Description=Exercise candidates.service under its hardening
Wants=candidates.service
After=candidates.service
SuccessAction=exit
FailureAction=exit
[Service]
Type=oneshot
ExecStart=/bin/bash /check.sh
StandardOutput=file:/out/check.log
StandardError=inherit
EOF
cat >"$work/check.target" <<'EOF'
[Unit]
Description=Check candidates.service, then exit
Requires=check.service basic.target
After=check.service
EOF
cat >"$work/check.sh" <<'EOF'
#!/bin/bash
# Runs inside the container, as root, after candidates.service started.
set -uo pipefail
exec 2>&1
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect() { # expect NAME ACTUAL WANTED
  if [ "$2" = "$3" ]; then pass "$1 = $2"; else fail "$1 = $2, expected $3"; fi
}
base=http://127.0.0.1:8000
for _ in $(seq 100); do curl -fsS -o /dev/null "$base/gtg" 2>/dev/null && break; sleep 0.1; done
expect "GET /gtg" "$(curl -s -o /dev/null -w '%{http_code}' "$base/gtg")" 200
expect "POST /candidate" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/candidate/Ada%20Lovelace")" 200
expect "GET /candidate" "$(curl -s "$base/candidate/Ada%20Lovelace")" '[{"CandidateName":"Ada Lovelace"}]'
[ -f /var/lib/candidates/data/candidates.db ] && pass "SQLite lives in the state folder" ||
  fail "no /var/lib/candidates/data/candidates.db"

pid=$(systemctl show -p MainPID --value candidates.service)
status() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$pid/status"; }
expect "user" "$(stat -c %U "/proc/$pid")" candidates
expect "CapEff" "$(status CapEff)" 0000000000000000
expect "NoNewPrivs" "$(status NoNewPrivs)" 1
expect "Seccomp (2 = filter)" "$(status Seccomp)" 2

curl -s -o /out/computation.json "$base/computation?iterations=1000000&seed=container" &
sleep 0.3
for task in /proc/"$pid"/task/*; do
  if [[ $(cat "$task/comm") == computation-* ]]; then
    expect "nice of $(cat "$task/comm")" "$(awk '{ print $19 }' "$task/stat")" 10
  fi
done
wait
grep -q '"hash"' /out/computation.json && pass "GET /computation" || fail "GET /computation: $(cat /out/computation.json)"

# SIGTERM (systemctl stop): the service drains for CANDIDATES_SHUTDOWN_DRAIN_SECS (1 s here),
# answering 503 on the health path so the load balancer stops sending, then exits once the
# requests in flight are done (none here). So the stop takes at least the drain and far less
# than drain + request timeout (10 s): systemd never has to escalate to SIGKILL.
started=$(date +%s%N)
systemctl stop --no-block candidates.service
sleep 0.3
expect "GET /gtg while draining" "$(curl -s -o /dev/null -w '%{http_code}' "$base/gtg")" 503
for _ in $(seq 400); do
  state=$(systemctl show -p ActiveState --value candidates.service)
  [ "$state" = inactive ] || [ "$state" = failed ] && break
  sleep 0.05
done
stop_ms=$((($(date +%s%N) - started) / 1000000))
if [ "$stop_ms" -ge 1000 ] && [ "$stop_ms" -lt 11000 ]; then
  pass "stopped in $stop_ms ms (drain 1 s, request timeout 10 s)"
else
  fail "stopped in $stop_ms ms, expected between the 1 s drain and 11 s"
fi
expect "result after SIGTERM" "$(systemctl show -p Result --value candidates.service)" success
expect "restarts" "$(systemctl show -p NRestarts --value candidates.service)" 0
# systemd writes the service's output into the file the CloudWatch agent ships.
if grep -q '"route":"/candidate/{name}"' /var/log/candidates/service.log 2>/dev/null; then
  pass "the service's JSON lines go to /var/log/candidates/service.log"
else
  fail "no request line in /var/log/candidates/service.log"
fi
echo "--- journal of candidates.service"
journalctl -u candidates.service --no-pager -o cat | tail -n 6
echo "--- /var/log/candidates/service.log"
tail -n 6 /var/log/candidates/service.log
echo "$failures failed"
exit $((failures > 0))
EOF

note "booting a container with packer/files/candidates.service and $binary"
status=0
unshare --mount --propagation private bash -s -- "$work" "$unit" "$binary" >"$work/boot.log" 2>&1 <<'EOF' || status=$?
set -euo pipefail
work=$1 unit=$2 binary=$3
mkdir -p "$work/layers" "$work/root"
mount -t tmpfs tmpfs "$work/layers"
mkdir -p "$work/layers/upper" "$work/layers/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/layers/upper,workdir=$work/layers/work" "$work/root"
exec systemd-nspawn --quiet --directory="$work/root" --private-network --register=no \
  --keep-unit --link-journal=no \
  --bind-ro="$unit:/etc/systemd/system/candidates.service" \
  --bind-ro="$work/dropin:/etc/systemd/system/candidates.service.d" \
  --bind-ro="$binary:/usr/local/bin/candidates" \
  --bind-ro="$work/candidates.env:/etc/candidates/candidates.env" \
  --bind-ro="$work/passwd:/etc/passwd" --bind-ro="$work/group:/etc/group" \
  --bind-ro="$work/check.service:/etc/systemd/system/check.service" \
  --bind-ro="$work/check.target:/etc/systemd/system/check.target" \
  --bind-ro="$work/check.sh:/check.sh" --bind="$work/out:/out" \
  --bind="$work/logs:/var/log/candidates" \
  --boot -- systemd.unit=check.target
EOF
if [ -s "$work/out/check.log" ]; then
  cat "$work/out/check.log"
else
  tail -n 40 "$work/boot.log" >&2
  die "the container did not run the check (exit $status)"
fi
[ "$status" -eq 0 ] || die "candidates.service misbehaved under its hardening (see above)"
note "candidates.service works under its hardening"
