#!/usr/bin/env bash
# checkov (pinned in tools/checkov/requirements.txt, installed into .tools/checkov by
# `make deps`) over deploy/terraform, offline: every check passes or is skipped inline
# (`#checkov:skip=ID:reason` in the resource) with its reason. Exit 1 on a failed check or
# a parsing error; a missing checkov skips, except under CI=true where it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG='checkov'
# shellcheck source=scripts/package-lib.sh
source scripts/package-lib.sh
started=$SECONDS

[ -x .tools/checkov/bin/checkov ] || skip "checkov is missing (make deps installs it into .tools/checkov)"
out=$(mktemp "${TMPDIR:-/tmp}/trailvault-checkov.XXXXXX.json")
trap 'rm -f "$out" "$out.err"' EXIT
# --skip-download: no platform calls (this machine reaches only package registries).
set +e
.tools/checkov/bin/checkov -d deploy/terraform --framework terraform --skip-download --quiet -o json >"$out" 2>"$out.err"
code=$?
set -e
report=$out
python3 - "$report" <<'PY' || { tail -20 "$out.err" >&2; rm -f "$out.err"; fail "checkov found failed checks or could not parse (exit $code)"; }
import json, sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d
s = d["summary"]
for c in d["results"].get("failed_checks", []):
    print(f"[checkov] FAIL: {c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})", file=sys.stderr)
skipped = d["results"].get("skipped_checks", [])
for c in skipped:
    reason = (c.get("check_result") or {}).get("suppress_comment") or ""
    if len(reason.strip()) < 20:
        print(f"[checkov] FAIL: {c['check_id']} on {c['resource']} is skipped without a reason", file=sys.stderr)
        sys.exit(1)
print(f"[checkov] {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped with a reason, {s['parsing_errors']} parsing errors ({s['resource_count']} resources)", file=sys.stderr)
sys.exit(0 if s["failed"] == 0 and s["parsing_errors"] == 0 else 1)
PY
rm -f "$out.err"
say "ok: checkov $(.tools/checkov/bin/checkov --version) ($((SECONDS - started)) s)"
