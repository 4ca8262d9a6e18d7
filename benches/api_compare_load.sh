#!/usr/bin/env bash
# Load benchmark of GET /api/v1/compare on a big synthetic environment, served from the
# comparison cache (issue 14): wrk on loopback, 2 threads, 50 keep-alive connections, 20 s.
# Usage: benches/api_compare_load.sh [PATH/TO/envdrift] [OBJECTS]
#   (defaults: the release build, 50000 objects; needs the release envdrift-testkit too)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/envdrift}
objects=${2:-50000}
kit=$(dirname "$bin")/envdrift-testkit
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
work=$(mktemp -d)
"$kit" generate --objects "$objects" --out "$work/env" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/envdrift.yaml" <<YAML
data_dir: state
listen: 127.0.0.1:$port
environments:
  big:
    desired: {type: dir, path: $work/env/desired}
    live: {type: dump, path: $work/env/live}
api:
  compare_max_age: 1h
  compare_concurrency: 2
  request_timeout: 120s
YAML
"$bin" daemon --config "$work/envdrift.yaml" --log-level error > "$work/daemon.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
# Let the daemon's own first scan finish, so that it does not share the cores with the load.
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/metrics" | grep -q '^envdrift_scans_total{' && break
  sleep 0.5
done
path="/api/v1/compare?from=git:big&to=big"
start=$(date +%s.%N)
curl -fs "http://127.0.0.1:$port$path" -o "$work/first.json"
echo "first request (reads both sides, compares): $(echo "$(date +%s.%N) - $start" | bc) s, $(wc -c < "$work/first.json") bytes"
echo "== wrk -t2 -c50 -d20s GET $path"
wrk -t2 -c50 -d20s --latency "http://127.0.0.1:$port$path" | sed -n '1,20p'
curl -fs "http://127.0.0.1:$port/metrics" | grep '^envdrift_api_compare_computed_total'
