#!/usr/bin/env bash
# Smoke test of a running candidates service: good to go, insert, verification,
# candidate list, computation. One line per check, "✓ ... passed" or "✗ ... failed";
# exits 1 when any check failed.
#
#   scripts/validate.sh http://localhost:8000      a service you started yourself
#   scripts/validate.sh [--env ENV]                the stack deployed by ./apply.sh ENV
#                                                  (default dev): reads its URL from the
#                                                  Terraform outputs and first waits for
#                                                  healthy targets behind the load balancer,
#                                                  with every instance in service on the
#                                                  group's current launch-template version
# Options: --wait SECONDS   how long to wait for all that and then for the load balancer
#                           to answer /gtg (default 600, both included)
#
# When the wait runs out, it says which instances still run an older launch-template
# version, or prints, for each instance that is not healthy, its console output and its last
# service log lines (CloudWatch Logs), and the group's failed scaling activities.
#
# The candidate list is read a few times, a second apart, for up to 10 s: its index in
# DynamoDB (ByName) is eventually consistent, so a candidate just inserted into an empty
# table may take a moment to be listed.
#
# With --env and an HTTPS stack, the requests go to the URL's name (domain_name, which the
# certificate covers and TLS is verified against) but connect to the load balancer itself
# (curl --connect-to), so a new stack validates before its DNS record exists. For the test
# suite only: CANDIDATES_LB_ADDRESS=HOST:PORT reaches the load balancer at that address.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/rollout.sh
source "$REPO_ROOT/scripts/lib/rollout.sh"
# shellcheck source=lib/logs.sh
source "$REPO_ROOT/scripts/lib/logs.sh"


env_name=dev
wait_secs=600
base_url=
curl_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --env) need_value "$@"; env_name=$2; shift 2 ;;
    --wait) need_value "$@"; wait_secs=$2; shift 2 ;;
    -h | --help) usage ;;
    -*) error "unknown option $1"; usage ;;
    *) [ -z "$base_url" ] || usage; base_url=$1; shift ;;
  esac
done
is_count "$wait_secs" || die "--wait takes a whole number of seconds, not '$wait_secs'"

require_cmd curl "install curl (Debian: apt-get install curl)"
require_cmd jq "install jq (Debian: apt-get install jq; macOS: brew install jq)"

# deployment_state REGION ASG TARGET-GROUP: "HEALTHY STALE", the number of healthy targets
# and the instances in service that do not run the group's launch-template version ("ID
# VERSION" pairs joined by commas; empty when none). Nothing when the AWS calls fail.
deployment_state() {
  local healthy group stale
  healthy=$(aws elbv2 describe-target-health --region "$1" --target-group-arn "$3" \
    --query "length(TargetHealthDescriptions[?TargetHealth.State=='healthy'])" --output text 2>/dev/null) || return 0
  [[ $healthy =~ ^[0-9]+$ ]] || return 0
  group=$(group_json "$1" "$2" 2>/dev/null) || return 0
  [ "$group" != null ] || return 0
  stale=$(stale_instances "$1" "$group" 2>/dev/null) || return 0
  printf '%s %s\n' "$healthy" "$(tr ' \n' ':,' <<<"$stale" | sed 's/,$//')"
}

# Waits until the target group has at least one healthy target and every instance in
# service runs the group's launch-template version, then until the load balancer answers
# /gtg: a fresh stack needs both (instances boot, targets register), and so does a rollout
# (the instance refresh replaces the old instances). When the wait runs out, says why.
wait_for_deployed_stack() {
  local target_group region asg log_group healthy stale state said='' deadline route
  require_cmd aws "install the AWS CLI: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
  base_url=$(tf_output "$env_name" url) || die "no Terraform outputs for environment '$env_name': run ./apply.sh $env_name first"
  route=$(lb_route "$env_name" "$base_url") || die "cannot tell how to reach the load balancer of '$env_name'"
  if [ -n "$route" ]; then
    curl_args=(--connect-to "$route")
    note "requests to $base_url connect to ${route#*:*:} (the load balancer; no DNS record needed)"
  fi
  target_group=$(tf_output "$env_name" target_group_arn)
  region=$(tf_output "$env_name" region)
  asg=$(tf_output "$env_name" asg_name)
  # A stack deployed before the service's logs went to CloudWatch has no log group yet.
  log_group=$(tf_output "$env_name" log_group_name 2>/dev/null) || log_group=
  note "waiting up to ${wait_secs}s for healthy targets behind $base_url, on the current launch-template version"
  deadline=$((SECONDS + wait_secs))
  while :; do
    state=$(deployment_state "$region" "$asg" "$target_group")
    read -r healthy stale <<<"${state:-0}"
    if [ "$healthy" -ge 1 ] && [ -z "$stale" ]; then
      note "$healthy healthy target(s); every instance in service runs the group's launch-template version"
      break
    fi
    if [ -n "$stale" ] && [ "$said" != "$stale" ]; then
      note "instance(s) in service on an older launch-template version (ID:VERSION): $stale; waiting for the instance refresh to replace them"
      said=$stale
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      if [ -n "$stale" ]; then
        error "after ${wait_secs}s, instance(s) in service still run an older launch-template version than $asg's (ID:VERSION): $stale. An instance refresh replaces them: ./apply.sh $env_name starts and follows one when the template changes; see aws autoscaling describe-instance-refreshes --region $region --auto-scaling-group-name $asg"
        exit 1
      fi
      error "no healthy target after ${wait_secs}s; what the instances of $asg say:"
      report_unhealthy_instances "$region" "$asg" "$target_group" "$log_group"
      die "no healthy target behind $base_url after ${wait_secs}s (the report above shows each unhealthy instance's console output and last service log lines; scripts/logs.sh --env $env_name --since 1h shows every instance's)"
    fi
    sleep "$(((deadline - SECONDS) < 10 ? (deadline - SECONDS > 0 ? deadline - SECONDS : 1) : 10))"
  done
  # What is left of --wait, and a few seconds at least for a first answer.
  wait_for_http "$base_url/gtg" "$(((deadline - SECONDS) > 5 ? deadline - SECONDS : 5))" \
    ${curl_args[@]+"${curl_args[@]}"} || die "$base_url/gtg does not answer 200 within --wait ${wait_secs}s"
}

if [ -z "$base_url" ]; then
  wait_for_deployed_stack
fi
base_url=${base_url%/}

curl_errors=$(mktemp)
trap 'rm -f "$curl_errors"' EXIT

failures=0
passed() { printf '✓ %s passed\n' "$1"; }
failed() {
  printf '✗ %s failed: %s\n' "$1" "$2"
  failures=$((failures + 1))
}

# request METHOD PATH: sets $status and $body; when nothing answered, status 000 and curl's
# reason as the body (a refused connection, a certificate that does not cover the name).
request() {
  local response problem
  if response=$(curl -sS --max-time 20 ${curl_args[@]+"${curl_args[@]}"} -X "$1" -w '\n%{http_code}' "$base_url$2" 2>"$curl_errors"); then
    status=${response##*$'\n'}
    body=${response%$'\n'*}
  else
    problem=$(tr '\n' ' ' <"$curl_errors")
    status=000
    body="(no answer: ${problem% })"
  fi
}

# The MD5 chain of /computation, computed here so the service's answer is checked,
# not merely received.
md5_chain() {
  local seed=$1 iterations=$2 hash=$1 i
  for ((i = 0; i < iterations; i++)); do
    hash=$(printf '%s%s' "$hash" "$seed" | md5sum | cut -c1-32)
  done
  printf '%s' "$hash"
}

name="validate-$(date +%s)-$RANDOM"

request GET /gtg
if [ "$status" = 200 ]; then passed "Good to go"; else failed "Good to go" "HTTP $status"; fi

request POST "/candidate/$name"
if [ "$status" = 200 ] && [ "$(jq -r .CandidateName <<<"$body" 2>/dev/null)" = "$name" ]; then
  passed "Insert"
else
  failed "Insert" "HTTP $status $body"
fi

request GET "/candidate/$name"
if [ "$status" = 200 ] && [ "$(jq -r '.[0].CandidateName' <<<"$body" 2>/dev/null)" = "$name" ]; then
  passed "Verification"
else
  failed "Verification" "HTTP $status $body"
fi

# listed: the listing holds at least one candidate (the one just inserted, or others).
listed() {
  [ "$status" = 200 ] && [ "$(jq -r 'if type == "array" then length else 0 end' <<<"$body" 2>/dev/null)" -ge 1 ]
}
# The ByName index is eventually consistent: on an empty table the first listing may not
# show the candidate inserted a moment ago (404, or an empty page). Up to ten tries a second
# apart, then the verdict; any other answer is the verdict at once.
request GET "/candidates?limit=1000"
tries=1
while ! listed && { [ "$status" = 404 ] || [ "$status" = 200 ]; } && [ "$tries" -lt 10 ]; do
  sleep 1
  request GET "/candidates?limit=1000"
  tries=$((tries + 1))
done
if listed; then
  passed "Candidate list"
else
  failed "Candidate list" "HTTP $status $body (after $tries tries)"
fi

seed="validate-$RANDOM"
request GET "/computation?seed=$seed&iterations=3"
expected=$(md5_chain "$seed" 3)
if [ "$status" = 200 ] && [ "$(jq -r .hash <<<"$body" 2>/dev/null)" = "$expected" ]; then
  passed "Computation"
else
  failed "Computation" "HTTP $status $body (expected hash $expected)"
fi

if [ "$failures" -gt 0 ]; then
  error "$failures check(s) failed against $base_url"
  exit 1
fi
note "all checks passed against $base_url"
