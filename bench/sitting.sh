#!/usr/bin/env bash
# One whole sitting: every Relay scenario and every peer (the bare
# broadcast server, socket.io + Redis adapter, BullMQ closed and open loop),
# one after another on this machine, each report saved as JSON in $OUT
# (default bench/results/<UTC date and time>/), then a summary table
# ($OUT/summary.md, also printed).
#
#   bench/sitting.sh                     # about 17 minutes; BUDGET caps it
#   OUT=bench/results/2026-12-01 bench/sitting.sh
#   QUICK=1 PROFILE=debug OUT=/tmp/s bench/sitting.sh   # tiny sizes: checks the script
#
# Every run is bounded by its own `timeout`; no run starts once BUDGET
# seconds (default 1800) have passed, so the sitting ends within BUDGET plus
# one run's limit. Each run starts its own throwaway Redis/PostgreSQL and
# processes and stops them after. Run it on a quiet machine: the load
# average before each run is logged in $OUT/log.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results/$(date -u +%Y-%m-%d-%H%MZ)}"
BUDGET="${BUDGET:-1800}"
PROFILE="${PROFILE:-release}"
export PROFILE
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ -z "${SKIP_BUILD:-}" ]]; then
    if [[ "$PROFILE" == release ]]; then
        cargo build --release -p relay-gateway -p relay-worker -p relay-bench || exit 1
    else
        cargo build -p relay-gateway -p relay-worker -p relay-bench || exit 1
    fi
fi
export SKIP_BUILD=1
(cd bench/peers && { [[ -d node_modules/socket.io && -d node_modules/bullmq ]] ||
    npm ci --no-audit --no-fund || npm install --no-audit --no-fund; }) >>"$OUT/log.txt" 2>&1 || exit 1
BENCH="${CARGO_TARGET_DIR:-target}/$PROFILE/relay-bench"

# Sizes: the sitting's, or tiny ones with QUICK=1.
if [[ -n "${QUICK:-}" ]]; then
    FAN=(--clients 100 --duration 2); CONNS=300; TOPIC_CLIENTS=300; TOPIC_RATE=100
    TOPIC_DUR=2; JOBS=300; OPEN=(--duration 2 --warmup 0.5); SWEEP=(--duration 1 --warmup 0.5 --budget 20)
    RESUME=(--clients 200 --missed 20)
else
    FAN=(--clients 2000 --duration 10); CONNS=10000; TOPIC_CLIENTS=10000; TOPIC_RATE=2000
    TOPIC_DUR=10; JOBS=10000; OPEN=(--duration 10 --warmup 1); SWEEP=(--duration 5 --warmup 1 --budget 240)
    RESUME=(--clients 10000 --missed 100)
fi

started=$(date +%s)
run() {
    local name="$1" limit="$2"
    shift 2
    if (($(date +%s) - started > BUDGET)); then
        echo "== $name: skipped (sitting budget of ${BUDGET}s spent)" | tee -a "$OUT/log.txt"
        return
    fi
    echo "== $name: $*  (load: $(cut -d' ' -f1-3 /proc/loadavg), $(($(date +%s) - started)) s in)" | tee -a "$OUT/log.txt"
    timeout "$limit" "$@" >"$OUT/$name.json" 2>>"$OUT/log.txt"
    echo "   exit $?" >>"$OUT/log.txt"
}
{ date -u; uptime; nproc; lscpu | grep -E 'Model name|^CPU\(s\)|Thread'; free -m; uname -r;
  redis-server --version; node --version; ls /usr/lib/postgresql; rustc --version;
  git rev-parse HEAD; top -bn1 | head -15; } >"$OUT/machine.txt" 2>&1

# Fan-out: Relay (2 gateways through Redis), the bare server (1 process; and
# 2 processes, each publish sent to both), socket.io (2 servers, Redis adapter).
run relay-fanout        120 bench/run.sh fanout --spawn 2 "${FAN[@]}" --rate 125
run bare-fanout         120 bench/run.sh fanout --bare 1 "${FAN[@]}" --rate 125
run bare2-fanout        120 bench/run.sh fanout --bare 2 "${FAN[@]}" --rate 125
run socketio-fanout     180 bench/run.sh peers socketio fanout --servers 2 "${FAN[@]}" --rate 125
run relay-fanout-250    120 bench/run.sh fanout --spawn 2 "${FAN[@]}" --rate 250
run bare-fanout-250     120 bench/run.sh fanout --bare 1 "${FAN[@]}" --rate 250
run socketio-fanout-250 180 bench/run.sh peers socketio fanout --servers 2 "${FAN[@]}" --rate 250
# Many topics: a topic per client, events to random topics over HTTP.
run relay-topics        180 bench/run.sh topics --spawn 1 --clients "$TOPIC_CLIENTS" --rate "$TOPIC_RATE" --duration "$TOPIC_DUR" --source-ips 4
# Idle connections. The bare server's rings hold 64 frames here: idle
# connections get none, and the ring is per topic (64 B a slot), not per connection.
run relay-connections   150 bench/run.sh connections --spawn 1 --clients "$CONNS" --topics 100 --source-ips 4
run bare-connections    150 bench/run.sh connections --bare 1 --bare-queue 64 --clients "$CONNS" --topics 100 --source-ips 4
run socketio-connections 240 bench/run.sh peers socketio connections --servers 1 --clients "$CONNS"
# Jobs: closed loop, open loop at 500/s, and the highest rate with p99 <= 50 ms.
run relay-jobs          240 bench/run.sh jobs --spawn 1 --workers 1 --concurrency 50 --jobs "$JOBS"
run bullmq-jobs         180 bench/run.sh peers bullmq --jobs "$JOBS" --workers 1 --concurrency 50
run relay-jobs-open-500 180 bench/run.sh jobs --spawn 1 --workers 1 --concurrency 50 --rate 500 "${OPEN[@]}"
run bullmq-jobs-open-500 180 bench/run.sh peers bullmq --workers 1 --concurrency 50 --rate 500 "${OPEN[@]}"
run relay-jobs-find-rate 360 bench/run.sh jobs --spawn 1 --workers 1 --concurrency 50 --find-rate --rate 250 --target-p99-ms 50 "${SWEEP[@]}"
run bullmq-jobs-find-rate 360 bench/run.sh peers bullmq --workers 1 --concurrency 50 --find-rate --rate 250 --target-p99-ms 50 "${SWEEP[@]}"
# Resume: everyone reconnects at once.
run relay-resume        180 bench/run.sh resume --spawn 2 "${RESUME[@]}" --source-ips 4

echo "sitting took $(($(date +%s) - started)) s" | tee -a "$OUT/log.txt"
"$BENCH" summary "$OUT" | tee "$OUT/summary.md"
echo "reports in $OUT"
