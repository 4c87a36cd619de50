#!/usr/bin/env bash
# Installs the candidates service into the image, and what ships its log lines to
# CloudWatch Logs: the CloudWatch agent from Amazon Linux's own repository, its
# configuration, and the rotation of the log file. Runs as root on the Packer build
# instance (Amazon Linux 2023), from packer/candidates.pkr.hcl, after the file
# provisioners staged the binary, its checksum, the systemd units and the log shipping's
# files in STAGING_DIR. packer/scripts/seal.sh runs after it.
#
# The repository's scripts/lib/common.sh is not on the build instance, so the two
# output helpers it would give are defined here with the same NOTE:/ERROR: format.
set -euo pipefail

note() { printf 'NOTE: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

readonly SERVICE_USER=candidates
readonly BINARY=/usr/local/bin/candidates
readonly UNIT=/etc/systemd/system/candidates.service
readonly CONFIG_DIR=/etc/candidates
readonly LOG_DIR=/var/log/candidates
readonly AGENT_CTL=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl

staging=${STAGING_DIR:?STAGING_DIR must name the folder the template uploaded to}
[ "$(id -u)" -eq 0 ] || die "run as root (the template runs this with sudo)"
for file in candidates candidates.sha256 candidates.service cloudwatch-agent.json \
  candidates-logrotate.conf candidates-logrotate.service candidates-logrotate.timer; do
  [ -f "$staging/$file" ] || die "$staging/$file was not uploaded"
done

note "checking the binary against its checksum"
(cd "$staging" && sha256sum --check --strict --quiet candidates.sha256) ||
  die "the uploaded binary does not match candidates.sha256: rebuild with scripts/build_release.sh"

# Amazon Linux 2023 pins its package repositories to the image's release; latest
# brings the security updates published since that image.
note "applying package updates"
dnf -y --releasever=latest update

note "installing the CloudWatch agent and logrotate from Amazon Linux's repository"
dnf -y --releasever=latest install amazon-cloudwatch-agent logrotate
[ -x "$AGENT_CTL" ] || die "the amazon-cloudwatch-agent package did not install $AGENT_CTL"

note "creating the system user $SERVICE_USER"
getent group "$SERVICE_USER" >/dev/null || groupadd --system "$SERVICE_USER"
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --gid "$SERVICE_USER" --no-create-home \
    --home-dir /var/lib/candidates --shell /usr/sbin/nologin \
    --comment "Candidates API" "$SERVICE_USER"
fi

note "installing $BINARY, $UNIT and $CONFIG_DIR/"
install -o root -g root -m 0755 "$staging/candidates" "$BINARY"
install -o root -g root -m 0644 "$staging/candidates.service" "$UNIT"
# User data writes candidates.env here (root:candidates 0640) at each launch.
install -d -o root -g "$SERVICE_USER" -m 0750 "$CONFIG_DIR"

note "installing the log shipping: $LOG_DIR/, the agent's configuration, the log rotation"
# systemd writes the service's output into this folder (StandardOutput=append:); the
# service itself never writes there, so it stays root's.
install -d -o root -g root -m 0750 "$LOG_DIR"
# User data fills in the environment's log group and hands the result to the agent.
install -o root -g root -m 0600 "$staging/cloudwatch-agent.json" "$CONFIG_DIR/cloudwatch-agent.json"
install -o root -g root -m 0644 "$staging/candidates-logrotate.conf" "$CONFIG_DIR/logrotate.conf"
install -o root -g root -m 0644 "$staging/candidates-logrotate.service" /etc/systemd/system/candidates-logrotate.service
install -o root -g root -m 0644 "$staging/candidates-logrotate.timer" /etc/systemd/system/candidates-logrotate.timer
if command -v restorecon >/dev/null 2>&1; then
  restorecon -R "$BINARY" "$UNIT" "$CONFIG_DIR" "$LOG_DIR" \
    /etc/systemd/system/candidates-logrotate.service /etc/systemd/system/candidates-logrotate.timer
fi

note "checking that the binary runs on this image and the unit is valid"
"$BINARY" --version >/dev/null || die "$BINARY does not run on this image (glibc too old?)"
systemd-analyze verify "$UNIT" || die "systemd-analyze verify rejects $UNIT"
systemd-analyze verify /etc/systemd/system/candidates-logrotate.service /etc/systemd/system/candidates-logrotate.timer ||
  die "systemd-analyze verify rejects the log rotation's units"
logrotate --debug --state /dev/null "$CONFIG_DIR/logrotate.conf" >/dev/null 2>&1 ||
  die "logrotate rejects $CONFIG_DIR/logrotate.conf"

note "enabling candidates.service (it starts once user data writes $CONFIG_DIR/candidates.env)"
systemctl daemon-reload
systemctl enable candidates.service candidates-logrotate.timer

note "removing build leftovers"
rm -rf -- "$staging"
dnf clean all
rm -f ~root/.bash_history ~ec2-user/.bash_history
# The build instance's logs do not belong in every instance of the group.
journalctl --rotate >/dev/null 2>&1 || true
journalctl --vacuum-time=1s >/dev/null 2>&1 || true
note "done"
