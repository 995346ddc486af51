# shellcheck shell=bash
# Shared by functions-package.sh, test-functions-package.sh and test-image.sh: messages, the CI rule for
# missing prerequisites, and the checks on what a Linux binary needs to run.

say() { printf '[%s] %s\n' "$TAG" "$*" >&2; }
fail() { printf '[%s] FAIL: %s\n' "$TAG" "$*" >&2; exit 1; }
# skip REASON: a missing prerequisite skips the test, except under CI=true where it fails.
skip() {
  if [ "${CI:-}" = true ]; then fail "$* (CI=true: a missing prerequisite is a failure)"; fi
  say "SKIP: $*"; exit 0
}

# glibc's own libraries, the only ones the Functions binary may link (its host images have
# no libxmlsec1, libxml2 or OpenSSL 3).
GLIBC_LIBS_RE='^(libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-x86-64\.so\.2)$'
# The newest glibc symbol version the Functions handler may need. The Functions host images
# that run custom handlers (azure-functions/base:4, dotnet:4) are Debian 11 with glibc 2.31;
# 2.28 (Debian 10) leaves a margin below that. The handler is linked against zig's glibc
# 2.17 sysroot (cargo-zigbuild), so it needs at most GLIBC_2.17 in practice.
MAX_GLIBC=${MAX_GLIBC:-2.28}

# check_glibc_only BINARY: fails naming any NEEDED library outside glibc, or any versioned
# glibc symbol newer than MAX_GLIBC. A static binary (no NEEDED entries, no interpreter)
# passes as it is.
check_glibc_only() {
  local bin=$1 needed bad newest
  command -v readelf >/dev/null && command -v objdump >/dev/null || skip "readelf/objdump missing (binutils)"
  needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  if [ -z "$needed" ] && ! readelf -l "$bin" | grep -q 'INTERP'; then
    say "$(basename "$bin") is static (no NEEDED entries, no interpreter)"; return 0
  fi
  [ -n "$needed" ] || fail "$bin: readelf -d shows no NEEDED entries but it has an interpreter"
  bad=$(grep -Ev "$GLIBC_LIBS_RE" <<<"$needed" || true)
  [ -z "$bad" ] || fail "$bin links libraries outside glibc: $(echo $bad) (see cargo tree -e features -i <crate>-sys)"
  newest=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -1)" != "$MAX_GLIBC" ]; then
    fail "$bin needs GLIBC_$newest, newer than $MAX_GLIBC: $(objdump -T "$bin" | grep "GLIBC_$newest" | awk '{print $NF}' | head -5 | xargs)"
  fi
  say "$(basename "$bin") links only glibc ($(echo $needed)); newest symbol version GLIBC_$newest <= $MAX_GLIBC"
}

# free_port: a free loopback TCP port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# seed_bucket BUCKET N: N CloudTrail-shaped log files of the last hours in moto ($S3_PORT).
seed_bucket() {
  S3_PORT=$S3_PORT BUCKET=$1 N=$2 .tools/venv/bin/python - <<'PY'
import datetime, gzip, json, os, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{os.environ['S3_PORT']}", region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
bucket = os.environ["BUCKET"]
s3.create_bucket(Bucket=bucket)
now = datetime.datetime.now(datetime.timezone.utc)
for i in range(int(os.environ["N"])):
    t = now - datetime.timedelta(hours=i + 1)
    key = (f"AWSLogs/111122223333/CloudTrail/us-east-1/{t:%Y/%m/%d}/"
           f"111122223333_CloudTrail_us-east-1_{t:%Y%m%dT%H%M}Z_seed{i:012d}.json.gz")
    body = gzip.compress(json.dumps({"Records": [{"eventVersion": "1.08", "eventID": f"e{i}",
                                                   "eventTime": f"{t:%Y-%m-%dT%H:%M:%SZ}"}]}).encode())
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                  ContentEncoding="gzip")
PY
}
