#!/usr/bin/env bash
# Clears what makes the build instance itself before Packer captures the image, so that
# every instance launched from it starts as a new machine. Runs as root, last, from
# packer/candidates.pkr.hcl.
#
#   /etc/machine-id   truncated to an empty file, not deleted: systemd then writes a new id
#                     at the next boot and treats it as a first boot. Left in place, every
#                     instance of the group would share the build instance's id (journal
#                     folders, DHCP client identifiers, anything keyed on it).
#   cloud-init        `cloud-init clean --logs`: its record of the build instance (instance
#                     id, user data, semaphores) and its logs, so that each instance's first
#                     boot runs every per-instance module, and its console output and
#                     /var/log/cloud-init*.log speak of that instance only.
#
# For the test suite only: MACHINE_ID_FILE names the file to truncate (default
# /etc/machine-id).
set -euo pipefail

note() { printf 'NOTE: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

machine_id=${MACHINE_ID_FILE:-/etc/machine-id}
command -v cloud-init >/dev/null 2>&1 || die "cloud-init is not installed: the image would not configure itself at launch"

note "emptying $machine_id: each instance gets its own at first boot"
truncate -s 0 "$machine_id"
note "clearing cloud-init's state and logs of the build instance"
cloud-init clean --logs
note "sealed"
