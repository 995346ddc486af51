#!/usr/bin/env bash
# shellcheck disable=SC2016  # the mmdebstrap hooks expand $1 themselves
# `make image`: builds localhost/trailvault:latest from deploy/container/Dockerfile with podman
# (docker only where podman is absent), on a machine with no registry and an empty image store.
#
#   1. the base, localhost/trailvault-base:bookworm, unless it is there with the same recipe:
#      `mmdebstrap --variant=minbase bookworm` from Debian's packages with the runtime
#      libraries the binary links, the `trailvault` user, then `podman import`;
#   2. the binary: `cargo build --locked --profile dist` (default features, SAML included),
#      unless TRAILVAULT_BINARY names one already built (the image test passes the debug
#      binary `cargo test` made);
#   3. `podman build --isolation=chroot --pull=never --format docker` with a build context
#      that holds only that binary.
#
# Environment: IMAGE (default localhost/trailvault:latest), BASE_IMAGE (default
# localhost/trailvault-base:bookworm), TRAILVAULT_BINARY, DEBIAN_MIRROR (default
# http://deb.debian.org/debian), CONTAINER_ENGINE (podman|docker), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

IMAGE=${IMAGE:-localhost/trailvault:latest}
BASE_IMAGE=${BASE_IMAGE:-localhost/trailvault-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
target_dir=${CARGO_TARGET_DIR:-target}

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman
  elif command -v docker >/dev/null; then engine=docker
  else die "neither podman nor docker is installed (make deps installs podman)"; fi
fi

# What the binary links (check with `ldd target/dist/trailvault`): samael's xmlsec and OpenSSL;
# everything else is glibc. ca-certificates for https to Azure and AWS.
runtime_packages=ca-certificates,libssl3,libxml2,libxslt1.1,libxmlsec1,libxmlsec1-openssl

scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT

image_exists() { "$engine" image inspect "$1" >/dev/null 2>&1; }
base_recipe() { "$engine" image inspect --format '{{index .Config.Labels "trailvault.base.recipe"}}' "$1" 2>/dev/null || true; }

build_base() {
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (make deps installs it)"
  local tmp; tmp=$(mktemp -d "${TMPDIR:-/tmp}/trailvault-base.XXXXXX"); scratch+=("$tmp")
  say "making $BASE_IMAGE with mmdebstrap (Debian 12 minbase + $runtime_packages)"
  # Docs, man pages and locales are left out (copyright files stay). Release files from
  # snapshot mirrors may be past Valid-Until, which says nothing about their signatures.
  mmdebstrap --variant=minbase --quiet \
    --include="$runtime_packages" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" groupadd --gid 10001 trailvault' \
    --customize-hook='chroot "$1" useradd --no-log-init --uid 10001 --gid 10001 --home-dir /var/lib/trailvault --create-home --shell /usr/sbin/nologin trailvault' \
    --customize-hook='mkdir -p "$1/etc/trailvault" && chmod 0755 "$1/etc/trailvault"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log' \
    bookworm "$tmp/base.tar" \
    "deb $DEBIAN_MIRROR bookworm main" \
    "deb $DEBIAN_MIRROR bookworm-updates main" \
    "deb $SECURITY_MIRROR bookworm-security main" \
    || die "mmdebstrap failed (it needs $DEBIAN_MIRROR, and root or unprivileged user namespaces)"
  "$engine" import \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL trailvault.base.recipe=$recipe" \
    "$tmp/base.tar" "$BASE_IMAGE" >/dev/null
}

# The base is rebuilt when its recipe (this function, the packages, the mirrors) changes.
recipe=$({ declare -f build_base; echo "$runtime_packages $DEBIAN_MIRROR $SECURITY_MIRROR"; } | sha256sum | cut -c1-16)
if image_exists "$BASE_IMAGE" && [ "$(base_recipe "$BASE_IMAGE")" = "$recipe" ]; then
  say "base $BASE_IMAGE is up to date"
else
  build_base
fi

binary=${TRAILVAULT_BINARY:-}
if [ -z "$binary" ]; then
  say "building the binary (cargo build --locked --profile dist)"
  cargo build --locked --profile dist --bin trailvault
  binary=$target_dir/dist/trailvault
fi
[ -x "$binary" ] || die "no executable at $binary"

ctx=$(mktemp -d "${TMPDIR:-/tmp}/trailvault-image.XXXXXX"); scratch+=("$ctx")
cp "$binary" "$ctx/trailvault"

build_args=(--pull=never --format docker --layers=false)
[ "$engine" = podman ] && build_args+=(--isolation=chroot)
[ "$engine" = docker ] && build_args=()   # docker keeps HEALTHCHECK and pulls only when told
say "building $IMAGE with $engine"
"$engine" build "${build_args[@]}" \
  --file deploy/container/Dockerfile \
  --build-arg "BASE=$BASE_IMAGE" \
  --build-arg BINARY=trailvault \
  --tag "$IMAGE" "$ctx" >&2
say "built $IMAGE ($("$engine" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
