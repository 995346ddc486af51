#!/usr/bin/env bash
# Installs what trailvault's tests and demo need and a fresh machine lacks:
# rclone (the independent checker), Azurite 3.35.0 (pinned by package-lock.json; it
# runs on Node 20), moto in a private venv, cargo-zigbuild and zig (the Functions
# handler's old-glibc link) in .tools/zig, and checkov in .tools/checkov (the Debian 11 root
# filesystem the Functions package test needs is made on first use by
# scripts/bullseye-rootfs.sh, with mmdebstrap from here). Idempotent: each step is skipped
# when its tool is already there. Uses only the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[deps] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root for: $*"; exit 1; fi
}

# rclone: the independent checker. pkg-config, libxmlsec1-dev, libclang-dev: samael's
# xmlsec build (bindgen). xmlsec1 and openssl: the SAML test fixtures are signed by them.
# Packaging (make image, make functions-package and their tests): podman (docker is used
# only where podman is absent), mmdebstrap for the image's Debian base, zip/unzip for the
# Functions package, binutils (readelf, objdump) for its checks, curl for the probes.
apt_packages=(rclone pkg-config libxmlsec1-dev libclang-dev xmlsec1 openssl
  mmdebstrap zip unzip binutils curl)
# podman unless a working docker is there (a docker client without a daemon does not count).
if ! command -v podman >/dev/null && ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
  apt_packages+=(podman)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x tools/emulators/node_modules/.bin/azurite-blob ] || [ ! -d tools/emulators/node_modules/@kusto/language-service-next ]; then
  command -v npm >/dev/null || { say "npm is missing: install Node.js 20"; exit 1; }
  say "installing Azurite and the Kusto language service (npm ci)"
  (cd tools/emulators && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -x .tools/venv/bin/moto_server ] || ! .tools/venv/bin/python -c 'import hcl2' 2>/dev/null; then
  say "installing moto and python-hcl2 (pip, venv in .tools/venv)"
  python3 -m venv .tools/venv
  .tools/venv/bin/pip install -q --disable-pip-version-check -r tools/emulators/requirements.txt
fi

# Pinned wheels in their own venvs: `pip install -r` again only when the pins changed.
venv_install() { # DIR REQUIREMENTS EXECUTABLE
  local dir=$1 req=$2 exe=$3
  if [ -f "$dir/.requirements" ] && cmp -s "$req" "$dir/.requirements" && [ -x "$exe" ]; then return; fi
  say "installing $(grep -v '^#' "$req" | xargs) (pip, venv in $dir)"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$dir/.requirements"
}
venv_install .tools/zig tools/zig/requirements.txt .tools/zig/bin/cargo-zigbuild
venv_install .tools/checkov tools/checkov/requirements.txt .tools/checkov/bin/checkov

say "ok: rclone $(rclone version 2>/dev/null | head -1 | awk '{print $2}'), azurite $(node -p 'require("./tools/emulators/node_modules/azurite/package.json").version'), moto $(.tools/venv/bin/python -c 'import moto; print(moto.__version__)'), $(grep -v '^#' tools/zig/requirements.txt | xargs), $(grep -v '^#' tools/checkov/requirements.txt)"
