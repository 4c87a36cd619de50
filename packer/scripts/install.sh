#!/usr/bin/env bash
# Installs the candidates service into the image. Runs as root on the Packer build
# instance (Amazon Linux 2023), from packer/candidates.pkr.hcl, after the file
# provisioners staged the binary, its checksum and the systemd unit in STAGING_DIR.
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

staging=${STAGING_DIR:?STAGING_DIR must name the folder the template uploaded to}
[ "$(id -u)" -eq 0 ] || die "run as root (the template runs this with sudo)"
for file in candidates candidates.sha256 candidates.service; do
  [ -f "$staging/$file" ] || die "$staging/$file was not uploaded"
done

note "checking the binary against its checksum"
(cd "$staging" && sha256sum --check --strict --quiet candidates.sha256) ||
  die "the uploaded binary does not match candidates.sha256: rebuild with scripts/build_release.sh"

# Amazon Linux 2023 pins its package repositories to the image's release; latest
# brings the security updates published since that image.
note "applying package updates"
dnf -y --releasever=latest update

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
if command -v restorecon >/dev/null 2>&1; then
  restorecon -R "$BINARY" "$UNIT" "$CONFIG_DIR"
fi

note "checking that the binary runs on this image and the unit is valid"
"$BINARY" --version >/dev/null || die "$BINARY does not run on this image (glibc too old?)"
systemd-analyze verify "$UNIT" || die "systemd-analyze verify rejects $UNIT"

note "enabling candidates.service (it starts once user data writes $CONFIG_DIR/candidates.env)"
systemctl daemon-reload
systemctl enable candidates.service

note "removing build leftovers"
rm -rf -- "$staging"
dnf clean all
rm -f ~root/.bash_history ~ec2-user/.bash_history
# The build instance's logs do not belong in every instance of the group.
journalctl --rotate >/dev/null 2>&1 || true
journalctl --vacuum-time=1s >/dev/null 2>&1 || true
note "done"
