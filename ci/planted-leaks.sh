#!/usr/bin/env bash
# Detection power: builds mcp-proxy with the `planted-leaks` feature, then runs the gate, for
# each of the six planted leaks, on the gate scenario that must catch it (connect-error also
# with TLS upstreams), and checks that it
# exits 2 naming the resource that leaked. The clean build's gate (ci/leak-gate.sh) is the other half: 0.
#
#   ci/planted-leaks.sh [OUT]        (default reports/planted)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/planted}

# leak | gate scenario | a check that must fail
cases=(
  "connect-error|connect-failures|tokio.alive_tasks"
  "connect-error|tls-upstreams|tokio.alive_tasks"
  "stdio-reap|stdio-crash|zombies"
  "sse-task|client-gone|tokio.alive_tasks"
  "timer|steady-80|tokio.alive_tasks"
  "sessions|abandoned-sessions|sessions"
  "sse-upstream|sse-upstreams|fds.socket"
)

# built as the harness builds them (`-p mcp-proxy -p mock-mcp --bins`), so that only mcp-proxy
# itself is compiled again with the feature, and again without it
echo "==> building the planted mcp-proxy (release, --features planted-leaks)" >&2
cargo build --locked --release -p mcp-proxy -p mock-mcp --bins --features mcp-proxy/planted-leaks
mkdir -p target/planted
cp target/release/mcp-proxy target/planted/mcp-proxy
echo "==> rebuilding the clean mcp-proxy, mock-mcp and mcp-loadgen" >&2
cargo build --locked --release -p mcp-proxy -p mock-mcp --bins
cargo build --locked --release -p mcp-loadgen

rm -rf "$out"
mkdir -p "$out"
failed=0
for case in "${cases[@]}"; do
  IFS='|' read -r leak scenario check <<<"$case"
  run="$leak-on-$scenario"
  # the gate itself, on the one scenario that must catch this leak
  only="$out/$run.scenarios"
  mkdir -p "$only"
  cp "scenarios/gate/$scenario.toml" "$only/"
  set +e
  MCP_LOADGEN_PROXY_BIN=target/planted/mcp-proxy MCP_PROXY_PLANTED_LEAK=$leak \
    target/release/mcp-loadgen gate "$only" --out "$out/$run" --quiet >"$out/$run.txt" 2>&1
  code=$?
  set -e
  summary="$out/$run/$scenario/summary.txt"
  if [ "$code" -eq 2 ] && grep -q "^FAIL $check " "$summary"; then
    echo "caught  $leak: the gate on gate/$scenario exits 2, failing $(grep '^FAIL ' "$summary" | awk '{print $2}' | paste -sd, -)"
  else
    echo "MISSED  $leak: the gate on gate/$scenario exits $code, expected 2 with $check failing" >&2
    tail -n 30 "$out/$run.txt" >&2
    failed=1
  fi
done
exit $failed
