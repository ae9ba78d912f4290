#!/usr/bin/env bash
# Stops what scripts/quickstart.sh started (by the process ids it recorded) and removes ./.quickstart/.
set -uo pipefail
cd "$(dirname "$0")/.."
QS=$PWD/.quickstart
if [ -f "$QS/pids" ]; then
  pids=$(cat "$QS/pids")
  for pid in $pids; do kill "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in $pids; do kill -9 "$pid" 2>/dev/null; done
  echo "stopped the quick start's proxy and Redis servers"
fi
rm -rf "$QS"
echo "removed $QS"
