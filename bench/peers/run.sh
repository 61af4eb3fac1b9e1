#!/usr/bin/env bash
# Installs the pinned peers (npm ci into bench/peers/node_modules) and runs
# one of them. A throwaway redis-server is started unless REDIS_URL is set.
#
#   bench/peers/run.sh socketio fanout --clients 2000 --rate 125 --duration 10 --servers 2
#   bench/peers/run.sh socketio connections --clients 10000 --servers 1
#   bench/peers/run.sh bullmq --jobs 20000 --workers 1 --concurrency 50
#   bench/peers/run.sh bullmq --rate 500 --duration 10          # open loop
#   bench/peers/run.sh bullmq --find-rate --rate 250 --duration 5
set -euo pipefail
cd "$(dirname "$0")"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# npm 11 refuses `npm ci` when the lock lacks optional platform packages;
# `npm install` then installs the same pinned versions.
[[ -d node_modules/socket.io && -d node_modules/bullmq ]] || npm ci --no-audit --no-fund || npm install --no-audit --no-fund
what="${1:?socketio or bullmq}"
shift
case "$what" in
    socketio) exec timeout 900 node --max-old-space-size=4096 socketio-bench.js "$@" ;;
    bullmq) exec timeout 900 node bullmq-bench.js "$@" ;;
    *) echo "unknown peer: $what" >&2; exit 64 ;;
esac
