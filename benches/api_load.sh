#!/usr/bin/env bash
# Load benchmark of the API on loopback with wrk (bounded: 10 s per endpoint, 2 threads,
# 16 connections). Usage: benches/api_load.sh [PATH/TO/envdrift]  (default: release build)
# Prints wrk's summary for GET /api/v1/compare (cached snapshots) and GET /api/v1/drifts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/envdrift}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/envdrift.yaml" <<YAML
data_dir: state
listen: 127.0.0.1:$port
environments:
  staging:
    desired: {type: dir, path: $root/config/demo/git/staging}
    live: {type: dump, path: $root/config/demo/live/staging}
  production:
    desired: {type: dir, path: $root/config/demo/git/production}
    live: {type: dump, path: $root/config/demo/live/production}
api:
  compare_max_age: 1h
  compare_concurrency: 2
YAML
"$bin" daemon --config "$work/envdrift.yaml" --log-level error > "$work/daemon.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs -X POST -d '{"env":"production"}' "http://127.0.0.1:$port/api/v1/scans" >/dev/null
sleep 1
for path in "/api/v1/compare?from=git:production&to=production" "/api/v1/drifts?env=production" ; do
  echo "== GET $path"
  curl -fs "http://127.0.0.1:$port$path" >/dev/null   # warm the snapshot cache
  wrk -t2 -c16 -d10s --latency "http://127.0.0.1:$port$path" | sed -n '1,20p'
done
