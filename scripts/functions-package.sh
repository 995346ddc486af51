#!/usr/bin/env bash
# `make functions-package`: dist/trailvault-functions.zip for an Azure Functions custom handler.
#
# Contents: host.json, one folder per function (sync, verify, drain, status) with its function.json,
# and the executable host.json's customHandler.description.defaultExecutablePath names, with
# its exec bit. The executable is built `--no-default-features` (no `saml`: samael needs
# libxmlsec1, libxml2, libxslt and OpenSSL, which the Functions host images lack), so it links
# only glibc's own libraries; and it is linked by cargo-zigbuild against zig's glibc 2.17
# sysroot (target x86_64-unknown-linux-gnu.2.17), because the Functions host images are
# Debian 11 (glibc 2.31) and anything linked on this Debian 12 machine needs GLIBC_2.34.
# Both are checked here (newest symbol at most GLIBC_2.28, scripts/package-lib.sh).
#
# The build is cached: when the sources (src/, Cargo.toml, Cargo.lock, build.rs) are older
# than the built executable, it is reused (cargo would say the same, after a few seconds).
#
# Environment: TRAILVAULT_FUNCTIONS_BINARY (an executable built that way, instead of building
# one), FUNCTIONS_CONFIG (a trailvault.toml to include beside host.json; app setting
# TRAILVAULT_CONFIG=trailvault.toml then finds it), OUT (default dist/trailvault-functions.zip),
# GLIBC_TARGET (default 2.17), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG='functions-package'
# shellcheck source=scripts/package-lib.sh
source scripts/package-lib.sh

src=deploy/azure-functions
out=${OUT:-dist/trailvault-functions.zip}
target_dir=${CARGO_TARGET_DIR:-target}
command -v zip >/dev/null || fail "zip is missing (make deps installs it)"

exe=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["customHandler"]["description"]["defaultExecutablePath"])' "$src/host.json")
case "$exe" in ""|/*|*..*) fail "$src/host.json: defaultExecutablePath must be a relative path in the package, is '$exe'" ;; esac

binary=${TRAILVAULT_FUNCTIONS_BINARY:-}
if [ -z "$binary" ]; then
  triple=x86_64-unknown-linux-gnu
  binary=$target_dir/$triple/dist/trailvault
  if [ -x "$binary" ] && [ -z "$(find src Cargo.toml Cargo.lock -newer "$binary" -print -quit 2>/dev/null)" ]; then
    say "reusing $binary (no source is newer)"
  else
    [ -x .tools/zig/bin/cargo-zigbuild ] || fail "cargo-zigbuild is missing (make deps installs it into .tools/zig)"
    say "building the handler (cargo zigbuild --locked --profile dist --no-default-features --target $triple.${GLIBC_TARGET:-2.17})"
    # cargo-zigbuild finds zig as `python -m ziglang` through the venv's python.
    PATH=$PWD/.tools/zig/bin:$PATH cargo-zigbuild zigbuild --locked --profile dist --no-default-features \
      --bin trailvault --target "$triple.${GLIBC_TARGET:-2.17}"
  fi
fi
[ -x "$binary" ] || fail "no executable at $binary"

stage=$(mktemp -d "${TMPDIR:-/tmp}/trailvault-functions.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# Copy before checking: a concurrent `make image` builds the same cargo profile with SAML.
install -m 0755 "$binary" "$stage/$exe"
check_glibc_only "$stage/$exe"
"$stage/$exe" --help >/dev/null || fail "$binary does not run here"

install -m 0644 "$src/host.json" "$stage/host.json"
functions=()
for f in "$src"/*/function.json; do
  name=$(basename "$(dirname "$f")")
  mkdir -p "$stage/$name"; install -m 0644 "$f" "$stage/$name/function.json"
  functions+=("$name")
done
[ ${#functions[@]} -gt 0 ] || fail "no function folders in $src"
if [ -n "${FUNCTIONS_CONFIG:-}" ]; then
  install -m 0644 "$FUNCTIONS_CONFIG" "$stage/trailvault.toml"
fi

# Reproducible: fixed times and order. zip keeps Unix modes (the exec bit) in its external
# attributes, which the Functions host's unzip (and Kudu's zip deploy) restores.
find "$stage" -exec touch -h -d @"${SOURCE_DATE_EPOCH:-315532800}" {} +
mkdir -p "$(dirname "$out")"
rm -f "$out"
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
(cd "$stage" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort | zip -q -X -D "$out_abs" -@)
mode=$(zipinfo "$out" "$exe" | awk '{print $1}')
[[ $mode == -rwx* ]] || fail "$exe lost its exec bit in the zip ($mode)"
say "wrote $out ($(du -h "$out" | cut -f1)): host.json, ${functions[*]}, $exe ($mode)"
