#!/usr/bin/env bash
# The merge gate: build once, run every scenario of scenarios/gate/ (or $GATE_SCENARIOS), write
# each run's reports plus one junit.xml and summary.md into $1 (default reports/gate), append
# the summary to $GITHUB_STEP_SUMMARY when set, and exit with the worst code:
#   0 pass · 1 a threshold breached · 2 a leak found (wins) · 3 a scenario could not be judged
#
#   ci/leak-gate.sh [OUT]
#
# Environment: GATE_SCENARIOS (a folder of *.toml), CARGO_PROFILE (release), and
# MCP_LOADGEN_PROXY_BIN to gate another mcp-proxy binary than the one built here.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-reports/gate}
scenarios=${GATE_SCENARIOS:-scenarios/gate}
profile=${CARGO_PROFILE:-release}

echo "==> building mcp-loadgen, mcp-proxy and mock-mcp ($profile)" >&2
# the same two builds `cargo run -p mcp-loadgen` and the harness itself make: built together,
# cargo would unify the crates' features differently and build every dependency again
cargo build --locked --profile "$profile" -p mcp-loadgen
cargo build --locked --profile "$profile" -p mcp-proxy -p mock-mcp --bins
dir=target/$profile
[ "$profile" = dev ] && dir=target/debug

echo "==> the gate: $scenarios -> $out" >&2
rm -rf "$out"
exec "$dir/mcp-loadgen" gate "$scenarios" --out "$out"
