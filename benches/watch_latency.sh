#!/usr/bin/env bash
# Watch-mode benchmark (issue 15): N synthetic objects in the Kubernetes API test server,
# the real `envdrift daemon` watching it (Slack sink -> the Slack stand-in), 20 edits with
# the real kubectl (set image / set env / patch) at random moments 0.5-2 s apart; prints the
# latency from each kubectl return to the stand-in's receipt, RSS, CPU while idle.
# Usage: benches/watch_latency.sh [OBJECTS] [PATH/TO/envdrift]
#   (defaults: 5000 objects, the release build; needs the release envdrift-testkit too)
#   RESYNC=SECS also measures a full resync of the unchanged cluster (interval = SECS; it
#   must be longer than the first evaluation plus the edits, e.g. 150 at 5k, 240 at 20k)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
objects=${1:-5000}
bin=${2:-${CARGO_TARGET_DIR:-$root/target}/release/envdrift}
kit=$(dirname "$bin")/envdrift-testkit
kubectl=${KUBECTL:-$root/.tools/venv/bin/kubectl}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$kit" watch-bench --envdrift "$bin" --kubectl "$kubectl" --objects "$objects" --edits 20 ${RESYNC:+--resync "$RESYNC"} --work "$work"
