#!/usr/bin/env bash
# shellcheck disable=SC2154  # img_* and friends are assigned by eval from the image inspection
# Tests dist/trailvault-functions.zip the way the Functions host uses it: unpacked into
# /home/site/wwwroot of a Debian 11 (bullseye) root filesystem, the OS of the Functions host
# images (glibc 2.31; scripts/bullseye-rootfs.sh makes and caches it), its executable checked
# (exec bit, `readelf -d` NEEDED entries only glibc's, no symbol newer than GLIBC_2.28),
# host.json and function.json checked against the plans' limits, then the executable started
# under chroot in that root filesystem as host.json says (defaultExecutablePath, arguments,
# workingDirectory) with FUNCTIONS_CUSTOMHANDLER_PORT, polled on GET / as the host does, and
# driven against Azurite and moto: a timer POST /sync archives the seeded bucket, POST
# /verify, and GET /api/status reports the source within target. `saml validate` says this
# build has no SAML support (exit 2).
#
# Then a kill, as the host does it on a function timeout or a restart (SIGKILL: no drain):
# more logs are seeded behind a proxy that slows S3 reads, the handler is SIGKILLed in the
# middle of a timer sync, a new handler is started, and the next timer invocations must
# complete the archive (rclone check). A killed run's lease (15 s) is not released: an
# invocation within it is refused quickly ("another sync holds the lock", 500) and one after
# it completes; the test waits the lease out as the next timer would.
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
[ "$(id -u)" = 0 ] || skip "needs root to chroot into the Debian 11 root filesystem"
command -v mmdebstrap >/dev/null || [ -d "${BULLSEYE_ROOT:-/var/cache/trailvault/bullseye-minbase}" ] \
  || skip "mmdebstrap is missing (make deps)"
if [ "${BUILD:-1}" = 1 ]; then
  t=$SECONDS
  OUT=$zip scripts/functions-package.sh || fail "scripts/functions-package.sh failed"
  say "package built in $((SECONDS - t)) s"
fi
[ -f "$zip" ] || fail "no $zip (make functions-package)"

t=$SECONDS
base=$(scripts/bullseye-rootfs.sh) || fail "no Debian 11 root filesystem (scripts/bullseye-rootfs.sh)"
say "Debian 11 root filesystem $base ($(chroot "$base" /usr/bin/ldd --version | head -1 | grep -o '[0-9.]*$'); $((SECONDS - t)) s)"

work=$(mktemp -d "${TMPDIR:-/tmp}/trailvault-test-functions.XXXXXX")
handler_pid='' proxy_pid='' proc_mounted=''
cleanup() {
  set +e
  [ -n "$handler_pid" ] && kill -KILL "$handler_pid" 2>/dev/null
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  [ -n "$proc_mounted" ] && umount "$root/proc"
  scripts/emulators.sh stop "$work/emu" 2>/dev/null
  if [ "${KEEP_WORK:-}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A private copy of the root filesystem (the cached one stays clean), /proc mounted as the
# host's container has it, the package where the host unpacks it.
root=$work/rootfs
cp -a "$base" "$root"
mount -t proc proc "$root/proc" && proc_mounted=1
app=$root/home/site/wwwroot
mkdir -p "$app"
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

# ---- start it as the host does, inside Debian 11
# start_handler LOG: the executable under chroot, from workingDirectory, with only the
# environment the host gives a custom handler plus the app settings; waits for GET /.
start_handler() {
  port=$(free_port)
  local t0 log=$1
  t0=$(date +%s%N)
  chroot "$root" /usr/bin/env -i -C "/home/site/wwwroot/$workdir" \
    PATH=/usr/local/bin:/usr/bin:/bin HOME=/home \
    FUNCTIONS_CUSTOMHANDLER_PORT="$port" FUNCTIONS_CUSTOMHANDLER_WORKER_ID=test-worker \
    FUNCTIONS_WORKER_RUNTIME=Custom TRAILVAULT_CONFIG=trailvault.toml \
    AzureWebJobsScriptRoot=/home/site/wwwroot \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
    TRAILVAULT_AZURE_ACCOUNT_KEY="$TRAILVAULT_AZURE_ACCOUNT_KEY" \
    "/home/site/wwwroot/$exe" "${args[@]}" >"$work/$log.out" 2>"$work/$log.err" &
  handler_pid=$!
  local up=0
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; then up=1; break; fi
    kill -0 "$handler_pid" 2>/dev/null || { cat "$work/$log.err" >&2; fail "the handler exited (in Debian 11)"; }
    sleep 0.1
  done
  [ "$up" = 1 ] || fail "the handler did not answer GET / within 30 s (the host gives it 30 to 60 s)"
  say "handler ($1) answered GET / after $(( ($(date +%s%N) - t0) / 1000000 )) ms, running in Debian 11 (glibc $(chroot "$root" /usr/bin/ldd --version | head -1 | grep -o '[0-9.]*$'))"
}
start_handler handler

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

# ---- SIGKILL in the middle of a timer sync, as the host does on a timeout or restart
t=$SECONDS
total=40
seed_bucket fn-kill "$total"
# moto behind a proxy that holds each object read 300 ms, four requests at a time: the sync
# takes seconds, long enough to kill in the middle.
proxy_port=$(free_port)
python3 - "$proxy_port" "$S3_PORT" >"$work/proxy.log" 2>&1 <<'PY' &
import http.client, http.server, sys, time
listen, upstream = int(sys.argv[1]), int(sys.argv[2])
class P(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def relay(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # Object reads only (the SDK's GetObject carries ?x-id=GetObject); listings pass.
        if self.command == "GET" and ("x-id=GetObject" in self.path or "?" not in self.path):
            time.sleep(0.3)
        c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
        c.request(self.command, self.path, body, {k: v for k, v in self.headers.items()})
        r = c.getresponse(); data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data))); self.end_headers()
        if self.command != "HEAD": self.wfile.write(data)
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = relay
s = http.server.ThreadingHTTPServer(("127.0.0.1", listen), P)
s.timeout = 1
deadline = time.time() + 300  # bounded: it stops by itself
while time.time() < deadline: s.handle_request()
PY
proxy_pid=$!
cat >"$app/trailvault.toml" <<TOML
[[source]]
name = "kill"
bucket = "fn-kill"
region = "us-east-1"
endpoint = "http://127.0.0.1:$proxy_port"

[target]
account_url = "http://127.0.0.1:$BLOB_PORT/devstoreaccount1"
container = "cloudtrail-archive"
state_container = "trailvault-state"
auth = "shared-key"

[sync]
max_requests = 4
TOML
start_handler killed
archived() { rc lsf -R --files-only azure:cloudtrail-archive/kill 2>/dev/null | grep -c '\.json\.gz$' || true; }
invoke sync >"$work/killed.code" &
invoke_pid=$!
n=0
for _ in $(seq 1 600); do
  n=$(archived)
  [ "$n" -ge 3 ] && break
  sleep 0.05
done
kill -KILL "$handler_pid"; killed_at=$SECONDS
{ wait "$handler_pid" || true; } 2>/dev/null  # bash's own "Killed" notice is expected here
handler_pid=
wait "$invoke_pid" 2>/dev/null || true
n=$(archived)
[ "$n" -ge 1 ] && [ "$n" -lt "$total" ] || fail "the kill did not land mid-sync ($n of $total archived)"
say "SIGKILL mid-sync: $n of $total logs archived, no drain ran (the host's Process.Kill)"

# The host starts a new worker; the timer fires again.
start_handler resumed
code=$(invoke sync)
if [ "$code" != 200 ]; then
  grep -q 'holds the lock' "$work/body" || { cat "$work/body" >&2; tail -20 "$work/resumed.err" >&2; fail "POST /sync after the kill answered $code without naming the held lock"; }
  say "POST /sync within the killed run's lease: $code, \"another sync holds the lock\" (refused at once, not hung)"
  left=$(( killed_at + 17 - SECONDS ))
  if [ "$left" -gt 0 ]; then say "waiting ${left} s for the killed run's 15 s lease to expire, as the next timer run would"; sleep "$left"; fi
  code=$(invoke sync)
fi
[ "$code" = 200 ] || { cat "$work/body" >&2; tail -20 "$work/resumed.err" >&2; fail "POST /sync after the kill answered $code"; }
n=$(archived)
[ "$n" = "$total" ] || fail "after the kill and the next invocation the archive holds $n of $total logs"
rc check s3:fn-kill azure:cloudtrail-archive/kill --one-way --download >/dev/null 2>&1 \
  || fail "rclone check: after the kill the archive differs from the bucket"
say "after the kill the next invocation completed the archive: $total logs, byte-identical (rclone check; $((SECONDS - t)) s)"
kill -TERM "$handler_pid"; wait "$handler_pid" 2>/dev/null || true; handler_pid=
say "ok: $zip ($((SECONDS - started)) s)"
