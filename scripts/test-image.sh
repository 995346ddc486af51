#!/usr/bin/env bash
# shellcheck disable=SC2154  # img_* and friends are assigned by eval from the image inspection
# Tests the container image the way this sandbox allows (podman cannot start containers here):
# the image's rootfs from `podman image mount`, its binary run under `chroot` as the image's
# USER with the image's ENTRYPOINT, CMD and Env, against local Azurite and moto.
#
# Checks: the config is as the contract says (non-root numeric USER, ENTRYPOINT the binary,
# CMD `daemon`, HEALTHCHECK on /healthz, port 8080); every library the binary links resolves
# inside the image; the daemon starts as that user, /healthz and /readyz answer, a scheduled
# sync archives the seeded bucket (checked in Azurite with rclone), the image's HEALTHCHECK
# command itself passes against it, and SIGTERM stops it with exit 0.
#
# Which image: TEST_IMAGE (e.g. localhost/trailvault:latest after `make image`) is tested as
# it is; without it, scripts/build-image.sh builds localhost/trailvault:test from the debug
# binary `cargo test` already built (CI builds no release binary for this), so the recipe
# and the base are what is tested. Needs root (mount, chroot), podman or docker, mmdebstrap
# for a missing base, and the emulators from `make deps`. Under CI=true anything missing
# fails; otherwise the test is skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

TAG='test-image'
# shellcheck source=scripts/package-lib.sh
source scripts/package-lib.sh

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker
  else skip "neither podman nor a working docker is installed (make deps installs podman)"; fi
fi
[ "$(id -u)" = 0 ] || skip "needs root to mount the image and chroot into it"
[ -x tools/emulators/node_modules/.bin/azurite-blob ] && [ -x .tools/venv/bin/moto_server ] \
  || skip "the emulators are missing (make deps)"
command -v rclone >/dev/null || skip "rclone is missing (make deps)"

image=${TEST_IMAGE:-}
if [ -z "$image" ]; then
  image=localhost/trailvault:test
  binary=${TRAILVAULT_BINARY:-${CARGO_TARGET_DIR:-target}/debug/trailvault}
  [ -x "$binary" ] || skip "no binary at $binary (cargo test or cargo build makes it)"
  t=$SECONDS
  IMAGE=$image TRAILVAULT_BINARY=$binary CONTAINER_ENGINE=$engine scripts/build-image.sh \
    || fail "scripts/build-image.sh failed"
  say "image built in $((SECONDS - t)) s"
fi
"$engine" image inspect "$image" >/dev/null 2>&1 || fail "no image $image"

# ---- static: the image's config
cfg=$("$engine" image inspect --format '{{json .Config}}' "$image")
health=$("$engine" image inspect --format '{{json .Config.Healthcheck}}' "$image" 2>/dev/null || true)
if [ -z "$health" ] || [ "$health" = null ]; then
  health=$("$engine" image inspect --format '{{json .HealthCheck}}' "$image" 2>/dev/null || true)
fi
eval "$(CFG=$cfg HEALTH=$health python3 - <<'PY'
import json, os, shlex, sys
c = json.loads(os.environ["CFG"])
h = json.loads(os.environ["HEALTH"] or "null") or c.get("Healthcheck") or {}
errors = []
user = c.get("User") or ""
uid, _, gid = user.partition(":")
if not uid.isdigit() or int(uid) == 0:
    errors.append(f"USER must be a numeric non-root uid, is {user!r}")
if not gid.isdigit() or int(gid) == 0:
    errors.append(f"USER must name a non-root numeric group, is {user!r}")
ep = c.get("Entrypoint") or []
if ep != ["/usr/local/bin/trailvault"]:
    errors.append(f"ENTRYPOINT is {ep!r}")
cmd = c.get("Cmd") or []
if not cmd or cmd[0] != "daemon":
    errors.append(f"CMD is {cmd!r}, not daemon")
test = h.get("Test") or []
if not test or test[0] not in ("CMD", "CMD-SHELL") or "/healthz" not in " ".join(test):
    errors.append(f"HEALTHCHECK does not probe /healthz: {h!r}")
if "8080/tcp" not in (c.get("ExposedPorts") or {}):
    errors.append("port 8080 is not exposed")
env = c.get("Env") or []
for e in errors:
    print(f"echo {shlex.quote('[test-image] FAIL: ' + e)} >&2;")
if errors:
    print("exit 1;")
q = lambda xs: " ".join(shlex.quote(x) for x in xs)
print(f"img_uid={uid}; img_gid={gid}; img_workdir={shlex.quote(c.get('WorkingDir') or '/')};")
print(f"img_entry=({q(ep)}); img_cmd=({q(cmd)}); img_env=({q(env)});")
print(f"img_health=({q(test[1:] if test[0] == 'CMD' else ['/bin/sh', '-c', test[1]])});")
PY
)"
say "config ok: USER $img_uid:$img_gid, ENTRYPOINT ${img_entry[*]}, CMD ${img_cmd[*]}, HEALTHCHECK set"

# ---- the rootfs
work=$(mktemp -d "${TMPDIR:-/tmp}/trailvault-test-image.XXXXXX")
root='' mounted_image='' container='' bound='' daemon_pid=''
cleanup() {
  set +e
  [ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null
  [ -n "$bound" ] && umount "$bound"
  [ -n "$mounted_image" ] && podman image unmount "$image" >/dev/null
  [ -n "$container" ] && docker rm -f "$container" >/dev/null
  scripts/emulators.sh stop "$work/emu" 2>/dev/null
  if [ "${KEEP_WORK:-}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [ "$engine" = podman ]; then
  root=$(podman image mount "$image") || fail "podman image mount $image"
  mounted_image=1
else
  container=$(docker create "$image")
  mkdir "$work/rootfs"; docker export "$container" | tar -x -C "$work/rootfs"; root=$work/rootfs
fi
[ -x "$root/usr/local/bin/trailvault" ] || fail "no executable /usr/local/bin/trailvault in the image"
missing=$(chroot "$root" /usr/bin/ldd /usr/local/bin/trailvault 2>&1 | grep 'not found' || true)
[ -z "$missing" ] || fail "libraries missing in the image: $missing"
say "every library the binary links is in the image"
grep -q "^[^:]*:[^:]*:$img_uid:$img_gid:" "$root/etc/passwd" \
  || fail "uid $img_uid has no /etc/passwd entry in the image"
[ -d "$root/etc/trailvault" ] || fail "the image has no /etc/trailvault for the config"

# in_image [--exec] CMD...: CMD under chroot as the image's user, with the image's Env and
# WorkingDir (--exec: replacing the calling subshell, so that $! is the command itself).
in_image() {
  local how=
  if [ "$1" = --exec ]; then how='exec'; shift; fi
  $how chroot --userspec="$img_uid:$img_gid" "$root" /usr/bin/env -i -C "$img_workdir" \
    "${img_env[@]}" HOME=/var/lib/trailvault AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_EC2_METADATA_DISABLED=true TRAILVAULT_AZURE_ACCOUNT_KEY="$TRAILVAULT_AZURE_ACCOUNT_KEY" "$@"
}

# ---- emulators and a bucket of CloudTrail-shaped files
scripts/emulators.sh start "$work/emu"
# shellcheck source=/dev/null
source "$work/emu/ports.env"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
write_rclone_conf "$work/rclone.conf"
rc() { env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" "$@"; }
seed_bucket image-trail 3
rc mkdir azure:cloudtrail-archive && rc mkdir azure:trailvault-state

mkdir -m 0755 "$work/etc"
cat >"$work/etc/trailvault.toml" <<TOML
[[source]]
name = "img"
bucket = "image-trail"
region = "us-east-1"
endpoint = "http://127.0.0.1:$S3_PORT"

[target]
account_url = "http://127.0.0.1:$BLOB_PORT/devstoreaccount1"
container = "cloudtrail-archive"
state_container = "trailvault-state"
auth = "shared-key"

[schedule]
cron = "*/2 * * * * *"
verify_cron = "0 0 0 1 1 *"
TOML
chmod 0644 "$work/etc/trailvault.toml"
# The config goes where the image expects it (TRAILVAULT_CONFIG), as a volume would.
mount --bind -o ro "$work/etc" "$root/etc/trailvault" 2>/dev/null \
  || mount --bind "$work/etc" "$root/etc/trailvault" || fail "cannot bind-mount the config into the rootfs"
bound=$root/etc/trailvault

in_image "${img_entry[@]}" config check >"$work/check.out" 2>&1 \
  || { cat "$work/check.out" >&2; fail "config check failed inside the image"; }

# ---- SAML is in this build (the Functions zip has none): xmlsec runs inside the image and
# refuses an unsigned response (exit 3, valid false), rather than "no SAML support" (exit 2).
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=trailvault image test" \
  -keyout "$work/idp.key" -out "$work/idp.pem" >/dev/null 2>&1 || skip "openssl is missing (make deps)"
cert_b64=$(grep -v -- ----- "$work/idp.pem" | tr -d '\n')
tenant=3b3c1a6e-8f0d-4a51-9c2e-0d5e7a9b1c2d
cat >"$work/etc/metadata.xml" <<XML
<?xml version="1.0" encoding="utf-8"?><EntityDescriptor ID="_m" entityID="https://sts.windows.net/$tenant/" xmlns="urn:oasis:names:tc:SAML:2.0:metadata"><IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>$cert_b64</X509Certificate></X509Data></KeyInfo></KeyDescriptor></IDPSSODescriptor></EntityDescriptor>
XML
printf '[[grant]]\ngroup = "0a0a0a0a-1111-2222-3333-444444444444"\nname = "admins"\nroles = ["arn:aws:iam::111122223333:role/Admin"]\n' >"$work/etc/roles.toml"
{ cat "$work/etc/trailvault.toml"; printf '\n[federation]\nidp_metadata = "/etc/trailvault/metadata.xml"\ntenant_id = "%s"\naudiences = ["https://signin.aws.amazon.com/saml"]\nrole_mapping = "/etc/trailvault/roles.toml"\n' "$tenant"; } >"$work/etc/saml.toml"
cat >"$work/etc/unsigned.xml" <<XML
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="$(date -u +%FT%TZ)" Destination="https://signin.aws.amazon.com/saml"><saml:Issuer>https://sts.windows.net/$tenant/</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="_a1" Version="2.0" IssueInstant="$(date -u +%FT%TZ)"><saml:Issuer>https://sts.windows.net/$tenant/</saml:Issuer></saml:Assertion></samlp:Response>
XML
chmod 0644 "$work/etc/"*
set +e
in_image "${img_entry[@]}" --config /etc/trailvault/saml.toml saml validate --json /etc/trailvault/unsigned.xml \
  >"$work/saml.out" 2>"$work/saml.err"
code=$?
set -e
[ "$code" = 3 ] && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["valid"] is False and d["reason"], d' "$work/saml.out" \
  || { cat "$work/saml.out" "$work/saml.err" >&2; fail "saml validate in the image exited $code, not 3 with a refusal"; }
say "saml validate in the image refuses an unsigned response: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reason"])' "$work/saml.out") (exit 3)"

# ---- the daemon, as the image would start it: ENTRYPOINT + CMD (0.0.0.0:8080), unless 8080 is
# taken on this host, in which case the same CMD on another port (the HEALTHCHECK then cannot run).
port=8080 run_health=1
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  port=$(free_port)
  run_health=0
  say "port 8080 is taken here: the daemon listens on $port and the HEALTHCHECK is checked statically only"
  cmd=()
  for a in "${img_cmd[@]}"; do
    if [ "$a" = 0.0.0.0:8080 ]; then cmd+=("0.0.0.0:$port"); else cmd+=("$a"); fi
  done
else
  cmd=("${img_cmd[@]}")
fi
(in_image --exec "${img_entry[@]}" "${cmd[@]}") >"$work/daemon.out" 2>"$work/daemon.err" &
daemon_pid=$!

get() { curl -s -o "$work/body" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port$1" || true; }
for _ in $(seq 1 150); do
  [ "$(get /healthz)" = 200 ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.err" >&2; fail "the daemon exited"; }
  sleep 0.2
done
[ "$(get /healthz)" = 200 ] || { tail -20 "$work/daemon.err" >&2; fail "/healthz did not answer 200"; }
[ "$(get /readyz)" = 200 ] || fail "/readyz did not answer 200"
pid_uid=$(awk '/^Uid:/ {print $2}' "/proc/$daemon_pid/status")
[ "$(readlink "/proc/$daemon_pid/exe")" != "" ] || fail "cannot see the daemon process"
[ "$pid_uid" = "$img_uid" ] || fail "the daemon runs as uid $pid_uid, not $img_uid"
say "daemon up as uid $pid_uid on port $port from the read-only rootfs: /healthz and /readyz 200"

synced=0
for _ in $(seq 1 60); do
  if [ "$(get /metrics)" = 200 ] && grep -q 'trailvault_sync_runs_total{source="img",status="Succeeded"}' "$work/body"; then
    synced=1; break
  fi
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.err" >&2; fail "the daemon exited"; }
  sleep 1
done
[ "$synced" = 1 ] || { tail -30 "$work/daemon.err" >&2; fail "no successful scheduled sync within 60 s"; }
n=$(rc lsf -R --files-only azure:cloudtrail-archive/img | grep -c '\.json\.gz$' || true)
[ "$n" = 3 ] || fail "the archive holds $n of the 3 seeded logs"
rc check s3:image-trail azure:cloudtrail-archive/img --one-way --download >/dev/null 2>&1 \
  || fail "rclone check: the archive differs from the bucket"
say "a scheduled sync archived the bucket (3 logs, byte-identical by rclone check)"

if [ "$run_health" = 1 ]; then
  in_image "${img_health[@]}" || fail "the image's HEALTHCHECK command failed against the running daemon"
  say "the image's HEALTHCHECK command passes"
fi

kill -TERM "$daemon_pid"
for _ in $(seq 1 150); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$daemon_pid" 2>/dev/null; then fail "the daemon did not stop within 30 s of SIGTERM"; fi
rc_daemon=0; wait "$daemon_pid" || rc_daemon=$?
daemon_pid=
[ "$rc_daemon" = 0 ] || { tail -20 "$work/daemon.err" >&2; fail "the daemon exited $rc_daemon on SIGTERM"; }
say "SIGTERM: exit 0"
if [ "$run_health" = 1 ]; then
  if in_image "${img_health[@]}" 2>/dev/null; then fail "the HEALTHCHECK command passes with no daemon running"; fi
  say "the HEALTHCHECK command fails with the daemon stopped"
fi
say "ok: $image ($((SECONDS - started)) s)"
