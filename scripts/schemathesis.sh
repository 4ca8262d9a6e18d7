#!/usr/bin/env bash
# Property-based API test: schemathesis against the served OpenAPI document of a running
# daemon (demo environments, an operate token), bounded in examples and time.
# Usage: scripts/schemathesis.sh PATH/TO/envdrift [SCHEMATHESIS_BIN]
set -euo pipefail
bin=$1
st=${2:-.tools/venv/bin/st}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
printf '%s' "$token" > "$work/op.token"
# A Slack sink with a signing secret turns POST /api/v1/slack/interactions on (it answers 404
# without one); its route matches no environment, so nothing is ever sent.
python3 -c 'import secrets; print("xoxb-" + secrets.token_hex(8))' > "$work/slack.token"
python3 -c 'import secrets; print(secrets.token_hex(16))' > "$work/slack.secret"
# A webhook secret turns POST /api/v1/hooks/git on (404 without one); no source is Git, so a
# push matches nothing.
python3 -c 'import secrets; print(secrets.token_hex(16))' > "$work/hook.secret"
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
comparisons:
  - {from: staging, to: production}
alerts:
  sinks:
    - type: slack
      name: buttons
      channel: C0123ABCD
      token_file: slack.token
      signing_secret_file: slack.secret
      api_url: http://127.0.0.1:9/api
      route: {environments: [no-such-environment]}
api:
  tokens:
    - {name: schemathesis, role: operate, token_file: op.token}
  hooks:
    git: {secret_file: hook.secret}
YAML
"$bin" daemon --config "$work/envdrift.yaml" > "$work/daemon.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
up=0
for _ in $(seq 1 300); do
  if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then up=1; break; fi
  sleep 0.1
done
if [ "$up" != 1 ]; then
  echo "the daemon did not start; its log:" >&2
  cat "$work/daemon.log" >&2
  exit 1
fi
# Data to query: one scan of each target.
for env in production staging staging-vs-production; do
  curl -fs -X POST -H "Authorization: Bearer $token" -d "{\"env\":\"$env\"}" "http://127.0.0.1:$port/api/v1/scans" >/dev/null
done
sleep 1
timeout 600 "$st" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" --checks all --max-examples 40 --seed 1
