#!/usr/bin/env bash
# shellcheck disable=SC2154  # img_* and friends are assigned by eval from the image inspection
# Tests dist/trailvault-functions.zip the way the Functions host uses it: unpacked, its
# executable checked (exec bit, `readelf -d` NEEDED entries only glibc's, no symbol newer than
# GLIBC_2.36), host.json and function.json checked against the plans' limits, then the
# executable started as host.json says (defaultExecutablePath, arguments, workingDirectory)
# with FUNCTIONS_CUSTOMHANDLER_PORT, polled on GET / as the host does, and driven against
# Azurite and moto: a timer POST /sync archives the seeded bucket, POST /verify, and
# GET /api/status reports the source within target. `saml validate` says this build has no
# SAML support (exit 2).
#
# ZIP (default dist/trailvault-functions.zip) is tested as it is when it exists and BUILD=0;
# by default scripts/functions-package.sh (re)builds it first. Under CI=true a missing
# prerequisite fails; otherwise the test is skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG='test-functions-package'
# shellcheck source=scripts/package-lib.sh
source scripts/package-lib.sh
started=$SECONDS

zip=${ZIP:-dist/trailvault-functions.zip}
[ -x tools/emulators/node_modules/.bin/azurite-blob ] && [ -x .tools/venv/bin/moto_server ] \
  || skip "the emulators are missing (make deps)"
command -v unzip >/dev/null || skip "unzip is missing (make deps)"
command -v rclone >/dev/null || skip "rclone is missing (make deps)"
if [ "${BUILD:-1}" = 1 ]; then
  t=$SECONDS
  OUT=$zip scripts/functions-package.sh || fail "scripts/functions-package.sh failed"
  say "package built in $((SECONDS - t)) s"
fi
[ -f "$zip" ] || fail "no $zip (make functions-package)"

work=$(mktemp -d "${TMPDIR:-/tmp}/trailvault-test-functions.XXXXXX")
handler_pid=
cleanup() {
  set +e
  [ -n "$handler_pid" ] && kill -KILL "$handler_pid" 2>/dev/null
  scripts/emulators.sh stop "$work/emu" 2>/dev/null
  if [ "${KEEP_WORK:-}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

app=$work/wwwroot
mkdir "$app"
unzip -q "$zip" -d "$app"

# ---- host.json and function.json, against the handler and the plans' limits
eval "$(python3 - "$app" <<'PY'
import json, os, re, shlex, sys
app = sys.argv[1]
errors = []
host = json.load(open(os.path.join(app, "host.json")))
if host.get("version") != "2.0":
    errors.append("host.json version is not 2.0")
ch = host.get("customHandler", {})
d = ch.get("description", {})
exe = d.get("defaultExecutablePath", "")
args = d.get("arguments", [])
if "functions" not in args:
    errors.append(f"customHandler arguments {args!r} do not start the `functions` handler")
for flag in ("enableProxyingHttpRequest", "enableForwardingHttpRequest"):
    if ch.get(flag) is not True:
        errors.append(f"customHandler.{flag} is not true (older hosts need enableForwardingHttpRequest)")
m = re.fullmatch(r"(\d+):(\d\d):(\d\d)", host.get("functionTimeout", ""))
if not m:
    errors.append(f"functionTimeout {host.get('functionTimeout')!r} is not hh:mm:ss")
else:
    secs = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
    # The shipped default must start on every plan the README names: Consumption allows 10 min.
    if not 120 <= secs <= 600:
        errors.append(f"functionTimeout {host['functionTimeout']} is outside 00:02:00..00:10:00 (Consumption's maximum)")
if "ExtensionBundle" not in host.get("extensionBundle", {}).get("id", ""):
    errors.append("no extensionBundle (timer triggers need it)")
levels = host.get("logging", {}).get("logLevel", {})
order = ["Trace", "Debug", "Information", "Warning", "Error", "Critical", "None"]
def level(cat):
    best, lv = "", levels.get("default", "Information")
    for k, v in levels.items():
        if k != "default" and (cat == k or cat.startswith(k + ".")) and len(k) > len(best):
            best, lv = k, v
    return lv
for cat in ("Host.Function.Console", "Host.Results", "Function.sync"):
    if order.index(level(cat)) > order.index("Information"):
        errors.append(f"logging: {cat} is at {level(cat)}; its lines would not reach Application Insights")
excluded = host.get("logging", {}).get("applicationInsights", {}).get("samplingSettings", {}).get("excludedTypes", "")
if "Exception" not in excluded.split(";") or "Request" not in excluded.split(";"):
    errors.append("Application Insights sampling may drop failed invocations (exclude Request;Exception)")
funcs = sorted(n for n in os.listdir(app) if os.path.isfile(os.path.join(app, n, "function.json")))
if funcs != ["drain", "status", "sync", "verify"]:
    errors.append(f"function folders are {funcs}")
for n in funcs:
    b = json.load(open(os.path.join(app, n, "function.json")))["bindings"]
    if n in ("drain", "sync", "verify"):
        t = b[0]
        if t.get("type") != "timerTrigger" or t.get("runOnStartup") is not False or t.get("direction") != "in":
            errors.append(f"{n}: not an in timerTrigger with runOnStartup false")
        s = t.get("schedule", "")
        if not (re.fullmatch(r"%[A-Z0-9_]+%", s) or len(s.split()) == 6):
            errors.append(f"{n}: schedule {s!r} is neither an app setting nor six-field NCRONTAB")
    else:
        if b[0].get("type") != "httpTrigger" or b[0].get("route") != "status":
            errors.append("status: not the httpTrigger on route status")
for e in errors:
    print(f"echo {shlex.quote('[test-functions-package] FAIL: ' + e)} >&2;")
if errors:
    print("exit 1;")
q = lambda xs: " ".join(shlex.quote(x) for x in xs)
print(f"exe={shlex.quote(exe)}; workdir={shlex.quote(d.get('workingDirectory') or '')}; args=({q(args)});")
print(f"timeout={shlex.quote(host['functionTimeout'])};")
PY
)"
say "host.json and function.json ok (functionTimeout $timeout, both forwarding flags, logging to Application Insights)"
bin=$app/$exe
[ -f "$bin" ] || fail "the package has no $exe (defaultExecutablePath)"
[ -x "$bin" ] || fail "$exe lost its exec bit"
check_glibc_only "$bin"

# ---- saml: this build says it has none
set +e; "$bin" saml validate /dev/null >"$work/saml.out" 2>"$work/saml.err"; code=$?; set -e
[ "$code" = 2 ] || fail "saml validate exited $code, not 2: $(cat "$work/saml.out" "$work/saml.err")"
grep -q 'no SAML support' "$work/saml.err" "$work/saml.out" || fail "saml validate did not say the build has no SAML support: $(cat "$work/saml.err")"
say "saml validate: exit 2, \"$(grep -ho 'this build has no SAML support[^"]*' "$work/saml.err" "$work/saml.out" | head -1)\""

# ---- emulators, a bucket, a config beside host.json as the README deploys it
scripts/emulators.sh start "$work/emu"
# shellcheck source=/dev/null
source "$work/emu/ports.env"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
write_rclone_conf "$work/rclone.conf"
rc() { env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" "$@"; }
seed_bucket fn-trail 4
rc mkdir azure:cloudtrail-archive && rc mkdir azure:trailvault-state
cat >"$app/trailvault.toml" <<TOML
[[source]]
name = "fn"
bucket = "fn-trail"
region = "us-east-1"
endpoint = "http://127.0.0.1:$S3_PORT"

[target]
account_url = "http://127.0.0.1:$BLOB_PORT/devstoreaccount1"
container = "cloudtrail-archive"
state_container = "trailvault-state"
auth = "shared-key"
create_containers = true
TOML

# ---- start it as the host does
port=$(free_port)
t0=$(date +%s%N)
(cd "$app/$workdir" && exec env -i PATH=/usr/bin:/bin HOME="$work" \
  FUNCTIONS_CUSTOMHANDLER_PORT="$port" FUNCTIONS_CUSTOMHANDLER_WORKER_ID=test-worker \
  FUNCTIONS_WORKER_RUNTIME=Custom TRAILVAULT_CONFIG=trailvault.toml \
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
  TRAILVAULT_AZURE_ACCOUNT_KEY="$TRAILVAULT_AZURE_ACCOUNT_KEY" \
  "$app/$exe" "${args[@]}") >"$work/handler.out" 2>"$work/handler.err" &
handler_pid=$!
up=0
for _ in $(seq 1 300); do
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; then up=1; break; fi
  kill -0 "$handler_pid" 2>/dev/null || { cat "$work/handler.err" >&2; fail "the handler exited"; }
  sleep 0.1
done
[ "$up" = 1 ] || fail "the handler did not answer GET / within 30 s (the host gives it 30 to 60 s)"
say "handler answered GET / after $(( ($(date +%s%N) - t0) / 1000000 )) ms"

invoke() { # FUNCTION -> status code; body in $work/body
  curl -s -o "$work/body" -w '%{http_code}' --max-time 120 -X POST \
    -H 'Content-Type: application/json' \
    -H "X-Azure-Functions-InvocationId: $(cat /proc/sys/kernel/random/uuid)" \
    -H 'X-Azure-Functions-HostVersion: 4.1037.0.0' -H 'User-Agent: Azure-Functions-Host/4.1037.0.0' \
    --data "{\"Data\":{\"timer\":{\"Schedule\":{\"AdjustForDST\":true},\"ScheduleStatus\":{\"Last\":\"0001-01-01T00:00:00\",\"Next\":\"$(date -u +%FT%TZ)\",\"LastUpdated\":\"0001-01-01T00:00:00\"},\"IsPastDue\":false}},\"Metadata\":{\"sys\":{\"MethodName\":\"$1\",\"UtcNow\":\"$(date -u +%FT%TZ)\",\"RandGuid\":\"$(cat /proc/sys/kernel/random/uuid)\"}}}" \
    "http://127.0.0.1:$port/$1" || true
}
code=$(invoke sync)
[ "$code" = 200 ] || { cat "$work/body" >&2; tail -20 "$work/handler.err" >&2; fail "POST /sync answered $code"; }
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert isinstance(d["Outputs"], dict) and d["ReturnValue"] is None and isinstance(d["Logs"], list) and d["Logs"], d' "$work/body" \
  || fail "POST /sync reply is not the custom handler shape: $(cat "$work/body")"
n=$(rc lsf -R --files-only azure:cloudtrail-archive/fn | grep -c '\.json\.gz$' || true)
[ "$n" = 4 ] || fail "the archive holds $n of the 4 seeded logs after the timer sync"
rc check s3:fn-trail azure:cloudtrail-archive/fn --one-way --download >/dev/null 2>&1 \
  || fail "rclone check: the archive differs from the bucket"
say "timer POST /sync: 200, 4 logs archived, byte-identical (rclone check); Logs: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Logs"][0][:120])' "$work/body")"

code=$(invoke verify)
[ "$code" = 200 ] || { cat "$work/body" >&2; fail "POST /verify answered $code"; }
say "timer POST /verify: 200"

code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 30 "http://127.0.0.1:$port/api/status" || true)
[ "$code" = 200 ] || { cat "$work/body" >&2; fail "GET /api/status answered $code"; }
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d["sources"][0]; assert s["name"]=="fn" and s["within_target"] is True, d' "$work/body" \
  || fail "GET /api/status: $(cat "$work/body")"
say "GET /api/status: 200, source fn within target"

kill -TERM "$handler_pid"; wait "$handler_pid" 2>/dev/null || true; handler_pid=
say "ok: $zip ($((SECONDS - started)) s)"
