#!/usr/bin/env bash
# Proxy benchmark (issue 3): direct Redis vs Twemproxy vs the rstore proxy with redis-benchmark.
# Usage: bash bench/proxy/run.sh [--requests 200000] [--clients 50] [--repeat 1] [--rstore-cpu 1] [--profile [--profile-dir DIR]]
set -euo pipefail
cd "$(dirname "$0")/../.."
npx tsc -p tsconfig.json >/dev/null || true   # (type errors elsewhere must not block a benchmark)
test -f dist/bench/proxy/run.js || { echo "build failed: dist/bench/proxy/run.js missing" >&2; exit 1; }
exec node dist/bench/proxy/run.js "$@"
