#!/usr/bin/env bash
# Benchmark: trailvault sync against rclone copy, on the same local emulators and the
# same generated CloudTrail bucket. Prints times and ratios; asserts nothing (timings
# on a shared 2-core machine are information, not pass/fail).
#   BENCH_LOGS_PER_DAY (default 100) x 3 accounts x 2 regions x BENCH_DAYS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench-work
rm -rf "$work"; mkdir -p "$work"
trap 'scripts/emulators.sh stop "$work"' EXIT
scripts/emulators.sh start "$work"
source "$work/ports.env"
source scripts/lib.sh

cargo build -q --release --bin trailvault --example seed_demo
target/release/examples/seed_demo --endpoint "http://127.0.0.1:$S3_PORT" --bucket bench \
  --logs-per-day "${BENCH_LOGS_PER_DAY:-100}" --days "${BENCH_DAYS:-2}"

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
tv() { target/release/trailvault --config "$work/trailvault.toml" --log-format json -q sync --json; }
tvcmd() { target/release/trailvault --config "$work/trailvault.toml" --log-format json -q "$@"; }
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

rc mkdir azure:rclone-copy
tv_full=$(timed tv)
rc_full=$(timed rc copy s3:bench azure:rclone-copy)
tv_again=$(timed tv)
rc_again=$(timed rc copy s3:bench azure:rclone-copy)
files=$(rc lsf -R --files-only s3:bench | grep -c .)

printf '\n%-34s %10s %10s %8s\n' "benchmark ($files files)" trailvault rclone ratio
printf '%-34s %9.2fs %9.2fs %7sx\n' "full copy (hash+verify vs copy)" "$tv_full" "$rc_full" "$(ratio "$tv_full" "$rc_full")"
printf '%-34s %9.2fs %9.2fs %7sx\n' "second run, nothing new" "$tv_again" "$rc_again" "$(ratio "$tv_again" "$rc_again")"
echo "(ratio = trailvault / rclone; below 1 means trailvault is faster. Azurite (~400 PUT/s) and moto (~550 GET/s) bound both.)"
# Reading the archive back: verify (every blob hashed; no keys imported here, so digests
# report unknown_key) and a restore to a folder, against rclone copying the same blobs.
verify_any() { tvcmd verify --json || true; }
tv_verify=$(timed verify_any)
tv_verify_mib=$(peak_mib target/release/trailvault --config "$work/trailvault.toml" --log-format json -q verify --json)
tv_restore=$(timed tvcmd restore --to "$work/restored" --json)
rm -rf "$work/restored"
tv_restore_mib=$(peak_mib target/release/trailvault --config "$work/trailvault.toml" --log-format json -q restore --to "$work/restored" --json)
rc_restore=$(timed rc copy azure:archive/bench "$work/rclone-restored")
printf '%-34s %9.2fs %10s %8s   peak %s MiB\n' "verify (read + hash every blob)" "$tv_verify" "-" "-" "$tv_verify_mib"
printf '%-34s %9.2fs %9.2fs %7sx   peak %s MiB\n' "restore to a folder" "$tv_restore" "$rc_restore" "$(ratio "$tv_restore" "$rc_restore")" "$tv_restore_mib"
echo "byte check of the trailvault archive:"
env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" check s3:bench azure:archive/bench --one-way --download 2>&1 | tail -1
