#!/usr/bin/env bash
# The measurements behind BENCHMARKS.md, in one sitting: every scenario for
# Relay and its peer, one after another, each report saved as JSON in
# $OUT (default bench/results/<UTC time>). Build first: bench/run.sh builds.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export SKIP_BUILD=1
run() {
    local name="$1"
    shift
    echo "== $name: $*  (load: $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/log.txt"
    "$@" >"$OUT/$name.json" 2>>"$OUT/log.txt"
    echo "   exit $?" >>"$OUT/log.txt"
}
{ date -u; uptime; nproc; free -m; uname -r; redis-server --version; node --version;
  ls /usr/lib/postgresql; } >"$OUT/machine.txt" 2>&1

run relay-fanout      bench/run.sh fanout --spawn 2 --clients 2000 --rate 125 --duration 10
run socketio-fanout   bench/run.sh peers socketio fanout --servers 2 --clients 2000 --rate 125 --duration 10
run relay-connections bench/run.sh connections --spawn 1 --clients 10000 --topics 100 --source-ips 4
run socketio-connections bench/run.sh peers socketio connections --servers 1 --clients 10000
run relay-jobs        bench/run.sh jobs --spawn 1 --workers 1 --concurrency 50 --jobs 10000
run bullmq-jobs       bench/run.sh peers bullmq --jobs 10000 --workers 1 --concurrency 50
run relay-resume      bench/run.sh resume --spawn 2 --clients 10000 --missed 100 --source-ips 4
run relay-fanout-250  bench/run.sh fanout --spawn 2 --clients 2000 --rate 250 --duration 10
run socketio-fanout-250 bench/run.sh peers socketio fanout --servers 2 --clients 2000 --rate 250 --duration 10
echo "done: $OUT"
