#!/usr/bin/env bash
# rstore quick start: one command on a fresh Debian/Ubuntu machine with Node 20.
#
#   bash scripts/quickstart.sh          (stop and clean up with: bash scripts/quickstart-stop.sh)
#
# Installs what is missing (redis-server from apt via scripts/install-deps.sh, the npm packages),
# builds, then in ./.quickstart/: starts two Redis groups, the embedded coordinator (a SQLite file) and
# one proxy, writes sample data through the proxy, runs `rstore migrate 0 511 2` while a load generator
# writes through the proxy, and checks that every key is where it should be with its last value.
# Ports: QS_PORT_BASE (default 16379): redis on BASE and BASE+1, proxy on BASE+2, its HTTP on BASE+3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QS=$ROOT/.quickstart
BASE=${QS_PORT_BASE:-16379}
R1=$BASE R2=$((BASE + 1)) PROXY=$((BASE + 2)) HTTP=$((BASE + 3))
KEYS=${QS_KEYS:-20000}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ -f "$QS/pids" ]; then
  echo "a quick start is already running in $QS: stop it first with 'bash scripts/quickstart-stop.sh'" >&2
  exit 1
fi

say "dependencies"
if ! command -v redis-server >/dev/null; then bash scripts/install-deps.sh; fi
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "Node.js 20 or newer is needed (https://nodejs.org or your distribution's nodejs package)" >&2
  exit 1
fi
[ -d node_modules/ioredis ] || npm ci --no-audit --no-fund
npm run build --silent

mkdir -p "$QS"
: > "$QS/pids"
cat > "$QS/config.ini" <<INI
product=quickstart
coordinator=embedded
coordinator_addr=./meta.db
checkpoint_dir=./checkpoints
INI
rstore() { node "$ROOT/bin/run.js" "$@" -c "$QS/config.ini"; }

say "two Redis groups on ports $R1 and $R2"
for p in $R1 $R2; do
  mkdir -p "$QS/redis-$p"
  redis-server --port "$p" --bind 127.0.0.1 --dir "$QS/redis-$p" --save '' --appendonly no --daemonize no \
    > "$QS/redis-$p.log" 2>&1 &
  echo $! >> "$QS/pids"
done
for p in $R1 $R2; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$p" ping >/dev/null || { echo "redis-server on port $p did not start: see $QS/redis-$p.log" >&2; exit 1; }
done

say "slots and groups (embedded coordinator: $QS/meta.db)"
rstore slot init
rstore server add 1 127.0.0.1:$R1 master
rstore server add 2 127.0.0.1:$R2 master
rstore slot range-set 0 1023 1 online

say "proxy on 127.0.0.1:$PROXY (metrics on http://127.0.0.1:$HTTP/metrics)"
node "$ROOT/bin/run.js" proxy start --addr 127.0.0.1:$PROXY --http-addr 127.0.0.1:$HTTP --id qs_proxy -c "$QS/config.ini" \
  > "$QS/proxy.log" 2>&1 &
echo $! >> "$QS/pids"
for _ in $(seq 100); do grep -q 'listening on' "$QS/proxy.log" && break; sleep 0.1; done
grep -q 'listening on' "$QS/proxy.log" || { echo "the proxy did not start: see $QS/proxy.log" >&2; exit 1; }
rstore proxy online qs_proxy

say "sample data: $KEYS keys through the proxy"
node scripts/quickstart-load.mjs seed 127.0.0.1:$PROXY "$KEYS" "$QS/state.json"
rstore server list

say "rstore migrate 0 511 2, while a load generator writes through the proxy"
node scripts/quickstart-load.mjs run 127.0.0.1:$PROXY "$QS/state.json" &
LOAD=$!
rstore migrate 0 511 2
kill -INT $LOAD
wait $LOAD

say "final check"
rstore slot list
node scripts/quickstart-load.mjs check 127.0.0.1:$PROXY "$QS/state.json" "$QS/config.ini"
echo
echo "The proxy keeps running: redis-cli -p $PROXY, 'node bin/run.js jobs -c $QS/config.ini', http://127.0.0.1:$HTTP/metrics"
echo "Stop and clean up: bash scripts/quickstart-stop.sh"
