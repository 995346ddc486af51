#!/usr/bin/env bash
# Benchmark: trailvault sync against rclone copy, on the same local emulators and the
# same generated CloudTrail bucket. Prints times, CPU, requests, peak memory and ratios;
# asserts nothing (timings on a shared 2-core machine are information, not pass/fail).
# Scale: BENCH_FILES (default 1500) files, spread over 3 accounts x 2 regions x BENCH_DAYS
# (default 2) days ending yesterday (BENCH_LOGS_PER_DAY overrides the spread).
#   BENCH_FILES=200000 make bench   # the issue-22 scale run (seeding alone takes minutes)
# BENCH_CALLGRIND=1 also counts instructions per file under valgrind's callgrind (slow:
# about 50x; use a few thousand files), for trailvault and rclone on the same files.
# Then the event lag (skip with BENCH_EVENTS=0): BENCH_EVENT_FILES (default 60) log files
# put at BENCH_EVENT_RATE (default 2) a second, put -> committed blob through the daemon's
# SQS events, beside the same through a scheduled sync; BENCH_EVENT_WAIT (default 120) s
# bounds the wait for each file.
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench-work
rm -rf "$work"; mkdir -p "$work"
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  scripts/emulators.sh stop "$work"
}
trap cleanup EXIT
scripts/emulators.sh start "$work"
source "$work/ports.env"
source scripts/lib.sh

# Where cargo builds: a shared CARGO_TARGET_DIR (several worktrees on one machine) too.
# BENCH_PROFILE=dev reuses a debug build where a release build would take too long; its
# timings of the tools' own work are then not comparable with rclone's.
profile=${BENCH_PROFILE:-release}
rel=${CARGO_TARGET_DIR:-target}/$([ "$profile" = dev ] && echo debug || echo "$profile")
cargo build -q --profile "$profile" --bin trailvault --example seed_demo --example event_lag
days=${BENCH_DAYS:-2}
# Per account-region and day: the logs plus 24 hourly digests.
logs_per_day=${BENCH_LOGS_PER_DAY:-$(( ${BENCH_FILES:-1500} / (6 * days) - 24 ))}
[ "$logs_per_day" -ge 1 ] || logs_per_day=1
"$rel/examples/seed_demo" --endpoint "http://127.0.0.1:$S3_PORT" --bucket bench \
  --logs-per-day "$logs_per_day" --days "$days" --days-ago 1

cat >"$work/trailvault.toml" <<TOML
[[source]]
name = "bench"
bucket = "bench"
region = "us-east-1"
endpoint = "http://127.0.0.1:$S3_PORT"
[target]
account_url = "http://127.0.0.1:$BLOB_PORT/devstoreaccount1"
container = "archive"
state_container = "state"
auth = "shared-key"
create_containers = true   # fresh emulator: let sync create both containers
[sync]
concurrency = 32
TOML
write_rclone_conf "$work/rclone.conf"
rc() { env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" --transfers 32 --checkers 32 -q "$@"; }
timed() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk "BEGIN{print $e - $s}"; }
ratio() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }
tv() { "$rel/trailvault" --config "$work/trailvault.toml" --log-format json -q sync --json; }
tvcmd() { "$rel/trailvault" --config "$work/trailvault.toml" --log-format json -q "$@"; }
# Peak resident memory (MiB) of a command, from the kernel's high-water mark while it runs.
# Give it the binary itself, not a shell function: a function runs in a forked shell, whose
# own mark (about 1 MiB) is all this would see.
peak_mib() {
  "$@" >/dev/null 2>&1 & local pid=$! peak=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
    if [ -n "$v" ] && [ "$v" -gt "$peak" ]; then peak=$v; fi
    sleep 0.05
  done
  wait "$pid" || true
  echo $((peak / 1024))
}

# usage FILE CMD...: runs CMD (a binary, not a shell function: the kernel's accounting is
# per process), its stdout in FILE; prints "wall_s cpu_s peak_MiB" (cpu = user + system).
usage() {
  local out=$1; shift
  /usr/bin/time -f '%e %U %S %M' -o "$work/usage.txt" "$@" >"$out" 2>>"$work/usage.log" || true
  awk '{printf "%.2f %.2f %d\n", $1, $2 + $3, $4 / 1024}' "$work/usage.txt"
}
rclone_bin() { env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" --transfers 32 --checkers 32 "$@"; }
tv_bin() { echo "$rel/trailvault" --config "$work/trailvault.toml" --log-format json -q sync --json; }
# Requests a trailvault sync made, from its own document (every request our stores sent).
tv_requests() { jq "[.requests | to_entries[].value] | add // 0" "$1"; }
# Requests an rclone copy made, from its own dump of each request's headers.
rclone_requests() { grep -c 'HTTP REQUEST' "$1" || true; }
per_1k() { awk "BEGIN{if ($2 > 0) printf \"%.2f\", $1 * 1000 / $2; else print \"-\"}"; }
per_file() { awk "BEGIN{if ($2 > 0) printf \"%.1f\", $1 / $2; else print \"-\"}"; }

rc mkdir azure:rclone-copy
files=$(rc lsf -R --files-only s3:bench | grep -c .)
read -r tv_full tv_cpu tv_mib < <(usage "$work/tv-full.json" $(tv_bin))
tv_files=$(jq '[.sources[].files_copied] | add' "$work/tv-full.json")
read -r rc_full rc_cpu rc_mib < <(usage /dev/null env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" \
  --transfers 32 --checkers 32 -q copy s3:bench azure:rclone-copy)
read -r tv_again tv_again_cpu _ < <(usage "$work/tv-again.json" $(tv_bin))
read -r rc_again rc_again_cpu _ < <(usage /dev/null env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" \
  --transfers 32 --checkers 32 -q copy s3:bench azure:rclone-copy)
# Once more with every request's headers dumped: counted, not timed.
rclone_bin -v --dump headers --log-file "$work/rc-again.log" copy s3:bench azure:rclone-copy >/dev/null 2>&1 || true
tv_req=$(tv_requests "$work/tv-full.json") tv_again_req=$(tv_requests "$work/tv-again.json")
rc_again_req=$(rclone_requests "$work/rc-again.log")
if [ "${BENCH_COUNT_RCLONE:-1}" = 1 ]; then
  # The same copy again into an empty container with every request dumped: counted, not timed.
  rc mkdir azure:rclone-count
  rclone_bin -v --dump headers copy s3:bench azure:rclone-count >"$work/rc-full.log" 2>&1 || true
  rc_req=$(rclone_requests "$work/rc-full.log")
else
  rc_req=-
fi
tv_cpu_1k=$(per_1k "$tv_cpu" "$tv_files") rc_cpu_1k=$(per_1k "$rc_cpu" "$files")

printf '\n%-34s %10s %10s %8s\n' "benchmark ($files files; trailvault copied $tv_files)" trailvault rclone ratio
printf '%-34s %9.2fs %9.2fs %7sx\n' "full copy, wall (hash+verify vs copy)" "$tv_full" "$rc_full" "$(ratio "$tv_full" "$rc_full")"
printf '%-34s %9.0f %10.0f %7sx\n' "full copy, files/s" "$(awk "BEGIN{print $tv_files / $tv_full}")" \
  "$(awk "BEGIN{print $files / $rc_full}")" "$(ratio "$(awk "BEGIN{print $tv_files / $tv_full}")" "$(awk "BEGIN{print $files / $rc_full}")")"
printf '%-34s %10s %10s %7sx\n' "full copy, CPU s per 1k files" "$tv_cpu_1k" "$rc_cpu_1k" "$(ratio "$tv_cpu_1k" "$rc_cpu_1k")"
printf '%-34s %10s %10s\n' "full copy, requests per file" "$(per_file "$tv_req" "$tv_files")" "$(per_file "${rc_req/-/0}" "$files" | sed 's/^0.0$/-/')"
printf '%-34s %7s MiB %6s MiB %7sx\n' "full copy, peak RSS" "$tv_mib" "$rc_mib" "$(ratio "$tv_mib" "$rc_mib")"
printf '%-34s %9.2fs %9.2fs %7sx\n' "second run, nothing new: wall" "$tv_again" "$rc_again" "$(ratio "$tv_again" "$rc_again")"
printf '%-34s %9.2fs %9.2fs\n' "second run, nothing new: CPU" "$tv_again_cpu" "$rc_again_cpu"
printf '%-34s %10s %10s\n' "second run, nothing new: requests" "$tv_again_req" "$rc_again_req"
echo "(ratio = trailvault / rclone; below 1 means trailvault is faster or cheaper. Azurite (~400 PUT/s) and moto (~550 GET/s)"
echo " bound both. CPU = user + system of the process, from the kernel; rclone's requests are counted in extra runs that dump them.)"

if [ "${BENCH_CALLGRIND:-0}" = 1 ]; then
  # Instructions counted by callgrind: the same count run to run, where CPU seconds on a
  # shared machine are not. Each tool copies the whole bucket into an empty container.
  cg_ir() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1; exit}'; }
  sed -e 's/^container = "archive"/container = "archive-cg"/' -e 's/^state_container = "state"/state_container = "state-cg"/' \
    "$work/trailvault.toml" >"$work/trailvault-cg.toml"
  valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.trailvault" -q \
    "$rel/trailvault" --config "$work/trailvault-cg.toml" --log-format json -q sync --json >"$work/tv-cg.json" 2>>"$work/usage.log" || true
  rc mkdir azure:rclone-cg
  # rclone is a Go binary; the valgrind of Debian 12 (3.19) aborts on it here, and its
  # count then shows as "-".
  env -u AWS_CA_BUNDLE valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.rclone" -q \
    rclone --config "$work/rclone.conf" --transfers 32 --checkers 32 -q copy s3:bench azure:rclone-cg \
    >>"$work/usage.log" 2>&1 || true
  tv_cg_files=$(jq '[.sources[].files_copied] | add // 0' "$work/tv-cg.json" 2>/dev/null || echo 0)
  tv_ir=$(cg_ir "$work/callgrind.trailvault" || true) rc_ir=$(cg_ir "$work/callgrind.rclone" || true)
  rc_ipf=-; rc_ratio=-
  if [ -n "$rc_ir" ]; then rc_ipf=$(per_file "$rc_ir" "$files"); rc_ratio=$(ratio "$(per_file "${tv_ir:-0}" "$tv_cg_files")" "$rc_ipf")x; fi
  printf '%-34s %10s %10s %8s\n' "full copy, instructions per file" "$(per_file "${tv_ir:-0}" "$tv_cg_files")" "$rc_ipf" "$rc_ratio"
  echo "(callgrind counts user-space instructions only: the kernel's share of CPU is not in it, and valgrind hides the"
  echo " CPU's SHA extensions, so SHA-256 (request signing, hashing) counts several times its native cost. Profiles: $work/callgrind.*;"
  echo " callgrind_annotate --inclusive=yes $work/callgrind.trailvault shows where they go.)"
fi

# Reading the archive back: verify (every blob hashed; no keys imported here, so digests
# report unknown_key) and a restore to a folder, against rclone copying the same blobs.
verify_any() { tvcmd verify --json || true; }
tv_verify=$(timed verify_any)
tv_verify_mib=$(peak_mib "$rel/trailvault" --config "$work/trailvault.toml" --log-format json -q verify --json)
tv_restore=$(timed tvcmd restore --to "$work/restored" --json)
rm -rf "$work/restored"
tv_restore_mib=$(peak_mib "$rel/trailvault" --config "$work/trailvault.toml" --log-format json -q restore --to "$work/restored" --json)
rc_restore=$(timed rc copy azure:archive/bench "$work/rclone-restored")
printf '%-34s %9.2fs %10s %8s   peak %s MiB\n' "verify (read + hash every blob)" "$tv_verify" "-" "-" "$tv_verify_mib"
printf '%-34s %9.2fs %9.2fs %7sx   peak %s MiB\n' "restore to a folder" "$tv_restore" "$rc_restore" "$(ratio "$tv_restore" "$rc_restore")" "$tv_restore_mib"
echo "byte check of the trailvault archive:"
env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" check s3:bench azure:archive/bench --one-way --download 2>&1 | tail -1

if [ "${BENCH_EVENTS:-1}" = 0 ]; then exit 0; fi

# Event lag (issue #20): how long a file waits between its PUT and its committed blob,
# through the daemon's queue and through a scheduled sync. The commit time is read from
# the archive's listing (event_lag measure), not from trailvault's own lag report.
ev_files=${BENCH_EVENT_FILES:-60} ev_rate=${BENCH_EVENT_RATE:-2} ev_wait=${BENCH_EVENT_WAIT:-120}
s3_url="http://127.0.0.1:$S3_PORT" blob_url="http://127.0.0.1:$BLOB_PORT/devstoreaccount1"
lag() { "$rel/examples/event_lag" "$@"; }
measure() { # source, puts file, lags file -> "p50 p99 max arrived total"
  lag measure --account-url "$blob_url" --container archive --source "$1" --puts "$2" \
    --wait "$ev_wait" --lags "$3"
}
lag_config() { # file, source name, bucket, extra lines
  cat >"$1" <<TOML
[[source]]
name = "$2"
bucket = "$3"
region = "us-east-1"
endpoint = "$s3_url"
$4
[target]
account_url = "$blob_url"
container = "archive"
state_container = "state"
auth = "shared-key"
create_containers = true
# A schedule that does not fire during the bench: what the events run archives came by events.
[schedule]
cron = "0 0 0 1 1 *"
verify_cron = "0 0 0 1 1 *"
TOML
}

queue_url=$(lag queue --endpoint "$s3_url" --bucket bench-events --queue bench-events)
lag_config "$work/events.toml" events bench-events "queue_url = \"$queue_url\""
"$rel/trailvault" --config "$work/events.toml" --log-format json daemon --listen 127.0.0.1:0 \
  >"$work/daemon.log" 2>&1 &
daemon_pid=$!
daemon_port=
for _ in $(seq 1 300); do
  daemon_port=$(grep '"listening"' "$work/daemon.log" | grep -o '"addr":"[^"]*"' | grep -o '[0-9]*"$' | tr -d '"' || true)
  [ -n "$daemon_port" ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { echo "the daemon exited; its log:" >&2; cat "$work/daemon.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$daemon_port" ] || { echo "the daemon did not listen; its log:" >&2; cat "$work/daemon.log" >&2; exit 1; }
lag put --endpoint "$s3_url" --bucket bench-events --files "$ev_files" --rate "$ev_rate" --out "$work/events-puts.tsv"
ev=$(measure events "$work/events-puts.tsv" "$work/events-lags.tsv")
read -r ev_p50 ev_p99 ev_max ev_in ev_n <<<"$ev"
# The daemon's own view, for comparison only: its histogram starts at each event's time.
own=$(curl -fsS "http://127.0.0.1:$daemon_port/metrics" \
  | awk '/^trailvault_event_lag_seconds_sum/{s=$2} /^trailvault_event_lag_seconds_count/{n=$2}
         END{if (n > 0) printf "mean %.2fs over %d files", s / n, n; else print "no files"}') || own="unavailable"
kill "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=

# The scheduled path, at the same rate, no queue: one sync when the put window ends, as a
# schedule tick would; each file waited from its put until that sync committed it.
lag_config "$work/scheduled.toml" scheduled bench-scheduled ""
lag put --endpoint "$s3_url" --bucket bench-scheduled --files "$ev_files" --rate "$ev_rate" --out "$work/scheduled-puts.tsv"
"$rel/trailvault" --config "$work/scheduled.toml" --log-format json -q sync --json >"$work/scheduled-sync.json"
sc=$(measure scheduled "$work/scheduled-puts.tsv" "$work/scheduled-lags.tsv")
read -r sc_p50 sc_p99 sc_max sc_in sc_n <<<"$sc"

lag_ratio() { case "$1$2" in *'>'*) echo "-" ;; *) awk "BEGIN{printf \"%.1fx\", $1 / $2}" ;; esac; }
window=$(awk "BEGIN{printf \"%.0f\", $ev_files / $ev_rate}")
printf '\n%-49s %8s %8s %8s %8s %8s\n' "event lag, put -> committed ($ev_files files at $ev_rate/s)" p50 p99 max "<=${ev_wait}s" "p99/ev"
printf '%-49s %7ss %7ss %7ss %8s %8s\n' "events (daemon, SQS long poll)" "$ev_p50" "$ev_p99" "$ev_max" "$ev_in/$ev_n" "1.0x"
printf '%-49s %7ss %7ss %7ss %8s %8s\n' "scheduled, one sync at the end of the ${window}s" "$sc_p50" "$sc_p99" "$sc_max" "$sc_in/$sc_n" "$(lag_ratio "$sc_p99" "$ev_p99")"
# Uniform arrivals between runs 8 h apart wait uniformly 0-8 h for the next one.
printf '%-49s %7sh %7sh %7sh %8s %8s\n' "scheduled, 3 runs a day (computed, not measured)" 4.00 7.92 8.00 "-" \
  "$(case "$ev_p99" in *'>'*) echo - ;; *) awk "BEGIN{printf \"%.0fx\", 7.92 * 3600 / $ev_p99}" ;; esac)"
echo "(committed = the blob's Last-Modified in Azurite's listing + 1 s, or when a listing every 0.25 s first showed it if sooner:"
echo " lags are upper bounds, at most 1 s high. Goal: events p99 under 30 s on the emulators. The daemon's own"
echo " trailvault_event_lag_seconds: $own. Per-file lags and the daemon's log are in $work/.)"
