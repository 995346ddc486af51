#!/usr/bin/env bash
# The demo: local Azurite + moto, a bucket of generated CloudTrail data (3 accounts,
# one of them through an organization trail, 2 regions, 2 days of logs and signed
# digests), one sync, its summary, a second (incremental) sync, an rclone byte check;
# then, with S3 stopped as in an AWS outage: the public key archived, the digest chain
# verified offline, and one account's logs restored to a folder.
set -euo pipefail
cd "$(dirname "$0")/.."
work=demo-work
rm -rf "$work"; mkdir -p "$work"
trap 'scripts/emulators.sh stop "$work"' EXIT

scripts/emulators.sh start "$work"
source "$work/ports.env"
source scripts/lib.sh
echo "== emulators: Azurite on 127.0.0.1:$BLOB_PORT, moto (S3) on 127.0.0.1:$S3_PORT"

cargo build -q --bin trailvault --example seed_demo

target/debug/examples/seed_demo --endpoint "http://127.0.0.1:$S3_PORT" --bucket org-trail-logs \
  --key-out "$work/cloudtrail-public-key.der"

cat >"$work/trailvault.toml" <<TOML
[[source]]
name = "demo"
bucket = "org-trail-logs"
region = "us-east-1"
prefix = ""
endpoint = "http://127.0.0.1:$S3_PORT"

[target]
account_url = "http://127.0.0.1:$BLOB_PORT/devstoreaccount1"
container = "cloudtrail-archive"
state_container = "trailvault-state"
auth = "shared-key"
create_containers = true   # fresh emulator: let sync create both containers

[sync]
concurrency = 16
lookback = "72h"
max_gap = "8h"
TOML

tv() { target/debug/trailvault --config "$work/trailvault.toml" --log-format text -q "$@"; }
echo; echo "== trailvault config check"; tv config check
echo; echo "== trailvault sync (first run: copies everything)"; tv sync
echo; echo "== trailvault sync (second run: incremental, nothing new)"; tv sync

write_rclone_conf "$work/rclone.conf"
echo; echo "== rclone check --download (independent byte-for-byte comparison of S3 and the archive)"
env -u AWS_CA_BUNDLE rclone --config "$work/rclone.conf" check s3:org-trail-logs azure:cloudtrail-archive/demo --one-way --download 2>&1 | tail -2

echo; echo "== AWS outage: the S3 emulator is stopped"
kill "$(sed -n 2p "$work/pids")" 2>/dev/null || true
echo; echo "== trailvault keys import (CloudTrail's public keys are archived ahead of time)"
for r in us-east-1 eu-west-1; do tv keys import --region "$r" "$work/cloudtrail-public-key.der"; done
echo; echo "== trailvault verify (signatures, chain and log hashes, from Azure alone)"
tv verify
echo; echo "== trailvault restore --account 444455556666 --region eu-west-1 --to $work/restored"
tv restore --account 444455556666 --region eu-west-1 --to "$work/restored"
echo; echo "demo finished; emulators stop now (config, logs and restored files stay in $work/)"
