#!/usr/bin/env bash
# Starts Azurite (Blob) and moto (S3) on free loopback ports for the demo.
# Writes their ports to $1/ports.env and their PIDs to $1/pids; `stop DIR` ends them.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?usage: emulators.sh start|stop DIR}
dir=${2:?usage: emulators.sh start|stop DIR}
mkdir -p "$dir"

wait_port() { # file, marker -> port
  for _ in $(seq 1 300); do
    if port=$(grep -o "$2[0-9]*" "$1" 2>/dev/null | head -1 | grep -o '[0-9]*$'); then
      [ -n "$port" ] && { echo "$port"; return 0; }
    fi
    sleep 0.1
  done
  echo "emulator did not start; its log:" >&2; cat "$1" >&2; return 1
}

case "$cmd" in
  start)
    tools/emulators/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort 0 \
      --inMemoryPersistence --disableTelemetry --skipApiVersionCheck >"$dir/azurite.log" 2>&1 &
    echo $! >"$dir/pids"
    .tools/venv/bin/moto_server -H 127.0.0.1 -p 0 >"$dir/moto.log" 2>&1 &
    echo $! >>"$dir/pids"
    blob=$(wait_port "$dir/azurite.log" "listens on http://127.0.0.1:")
    s3=$(wait_port "$dir/moto.log" "Running on http://127.0.0.1:")
    printf 'BLOB_PORT=%s\nS3_PORT=%s\n' "$blob" "$s3" >"$dir/ports.env"
    ;;
  stop)
    [ -f "$dir/pids" ] && while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$dir/pids"
    rm -f "$dir/pids"
    ;;
  *) echo "usage: emulators.sh start|stop DIR" >&2; exit 2 ;;
esac
