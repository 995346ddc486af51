#!/usr/bin/env bash
# shellcheck disable=SC2016  # the mmdebstrap hook expands $1 itself
# Prints the path of a Debian 11 (bullseye) minbase root filesystem, making it first when it
# is missing or its recipe changed: the OS (glibc 2.31) of the Azure Functions host images
# that run custom handlers, for scripts/test-functions-package.sh to start the handler in
# under chroot. `mmdebstrap --variant=minbase bullseye` from Debian's packages, plus
# ca-certificates (the host images carry them); about 90 MB, made in one to three minutes.
#
# Environment: BULLSEYE_ROOT (default /var/cache/trailvault/bullseye-minbase),
# DEBIAN_MIRROR (default http://deb.debian.org/debian). Needs root (a root filesystem's
# files belong to root; chroot needs it too).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[bullseye] %s\n' "$*" >&2; }
die() { printf '[bullseye] error: %s\n' "$*" >&2; exit 1; }

root=${BULLSEYE_ROOT:-/var/cache/trailvault/bullseye-minbase}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=ca-certificates

make_rootfs() {
  local tmp=$1
  mmdebstrap --variant=minbase --quiet --include="$packages" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bullseye "$tmp" "deb $mirror bullseye main"
}
recipe=$({ declare -f make_rootfs; echo "$packages $mirror"; } | sha256sum | cut -c1-16)

if [ "$(cat "$root/.trailvault-recipe" 2>/dev/null)" != "$recipe" ]; then
  [ "$(id -u)" = 0 ] || die "making $root needs root"
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (make deps installs it)"
  mkdir -p "$(dirname "$root")"
  exec 9>"$root.lock"
  flock 9
  if [ "$(cat "$root/.trailvault-recipe" 2>/dev/null)" != "$recipe" ]; then
    say "making $root (mmdebstrap --variant=minbase bullseye, $mirror)"
    tmp=$root.new.$$
    rm -rf "$tmp"
    make_rootfs "$tmp" || { rm -rf "$tmp"; die "mmdebstrap failed (it needs $mirror)"; }
    grep -q '^VERSION_ID="11"' "$tmp/etc/os-release" || { rm -rf "$tmp"; die "$tmp is not Debian 11"; }
    echo "$recipe" >"$tmp/.trailvault-recipe"
    rm -rf "$root.old"; [ -d "$root" ] && mv "$root" "$root.old"
    mv "$tmp" "$root"; rm -rf "$root.old"
  fi
fi
echo "$root"
