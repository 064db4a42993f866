#!/usr/bin/env bash
# The verdict on proxies nobody here wrote: npm `mcp-proxy` and `supergateway --stateful`, each in
# front of the MCP "everything" reference server over stdio, started by the harness from the
# pinned packages of scenarios/external (install first: npm ci --prefix scenarios/external).
# Each scenario must end with its expected exit code, failing the named check when it must:
#   clean controls (sessions DELETEd, memory judged over 5 rounds) pass; abandoned sessions that
#   the proxy keeps fail (supergateway on the sh/node children it keeps, npm mcp-proxy on the
#   sessions still held when asked); the same with a short session timeout pass; the everything
#   server measured directly over stdio (`[target] stdio`, the harness its client) passes, and so
#   does the Python mcp-proxy (PyPI, pinned by scenarios/external/requirements.txt) in front of it.
#
#   ci/external-peers.sh [OUT]        (default reports/external)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-reports/external}

# scenario | expected exit | a check that must fail (exit 2 only)
cases=(
  "npm-mcp-proxy|0|"
  "supergateway|0|"
  "npm-mcp-proxy-abandoned|2|sessions.held"
  "npm-mcp-proxy-abandoned-reaped|0|"
  "supergateway-abandoned|2|children"
  "supergateway-abandoned-reaped|0|"
  "server-everything-stdio|0|"
  "py-mcp-proxy|0|"
)

if [ ! -d scenarios/external/node_modules ]; then
  echo "scenarios/external/node_modules is missing: npm ci --prefix scenarios/external" >&2
  exit 3
fi
if [ ! -x scenarios/external/.venv/bin/mcp-proxy ]; then
  echo "scenarios/external/.venv is missing: python3 -m venv scenarios/external/.venv && scenarios/external/.venv/bin/pip install -r scenarios/external/requirements.txt" >&2
  exit 3
fi
cargo build --locked --release -p mcp-loadgen
rm -rf "$out"
mkdir -p "$out"
failed=0
for case in "${cases[@]}"; do
  IFS='|' read -r scenario expected check <<<"$case"
  set +e
  target/release/mcp-loadgen run "scenarios/external/$scenario.toml" --out "$out/$scenario" --quiet \
    >"$out/$scenario.txt" 2>&1
  code=$?
  set -e
  summary="$out/$scenario/summary.txt"
  fails=$( (grep '^FAIL ' "$summary" 2>/dev/null || true) | awk '{print $2}' | paste -sd, -)
  if [ "$code" -eq "$expected" ] && { [ -z "$check" ] || grep -q "^FAIL $check " "$summary"; }; then
    echo "as expected  $scenario: exit $code${fails:+, failing $fails}"
  else
    echo "WRONG        $scenario: exit $code${fails:+ failing $fails}, expected $expected${check:+ with $check failing}" >&2
    tail -n 40 "$out/$scenario.txt" >&2
    failed=1
  fi
done
exit $failed
