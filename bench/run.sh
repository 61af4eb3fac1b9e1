#!/usr/bin/env bash
# Builds Relay in release mode and runs one relay-bench scenario against a
# throwaway stack it starts itself (redis-server, PostgreSQL for `jobs`,
# gateways and workers on loopback, RELAY_AUTH=off, limits raised), then
# stops everything. Every scenario is bounded in count and time.
#
#   bench/run.sh fanout      --spawn 2 --clients 2000 --rate 125 --duration 10
#   bench/run.sh fanout      --bare 1 --clients 2000 --rate 125 --duration 10
#   bench/run.sh topics      --spawn 1 --clients 10000 --rate 2000 --source-ips 4
#   bench/run.sh connections --spawn 1 --clients 10000
#   bench/run.sh jobs        --spawn 1 --workers 1 --jobs 20000
#   bench/run.sh jobs        --spawn 1 --rate 500 --duration 10
#   bench/run.sh jobs        --spawn 1 --find-rate --rate 250 --duration 5
#   bench/run.sh resume      --spawn 2 --clients 10000 --missed 100
#   bench/run.sh peers socketio fanout --clients 2000 --rate 125 --duration 10
#   bench/run.sh peers bullmq --jobs 20000
#   bench/run.sh peers bullmq --rate 500 --duration 10
#
# Without --spawn, give --gateway http://HOST:PORT (repeat) for running
# gateways. PROFILE=debug uses (and builds) the debug binaries instead.
# bench/sitting.sh runs everything in one sitting.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ "${1:-}" == peers ]]; then
    shift
    exec bench/peers/run.sh "$@"
fi

PROFILE="${PROFILE:-release}"
if [[ -z "${SKIP_BUILD:-}" ]]; then
    if [[ "$PROFILE" == release ]]; then
        cargo build --release -p relay-gateway -p relay-worker -p relay-bench
    else
        cargo build -p relay-gateway -p relay-worker -p relay-bench
    fi
fi
exec timeout 900 "${CARGO_TARGET_DIR:-target}/$PROFILE/relay-bench" "$@"
