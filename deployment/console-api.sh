#!/usr/bin/env bash
# Regenerates console/src/api/schema.d.ts from the hub's own OpenAPI document: a throwaway hub on embedded
# defaults answers /api/docs-json, openapi-typescript turns it into the console's API types. The hub API e2e
# fails when the committed file differs from what this would write.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/sendense-console-api-XXXXXX)
port=${SENDENSE_API_PORT:-18099}
token=console-api-$RANDOM$RANDOM
cleanup() { [ -n "${hub:-}" ] && kill "$hub" 2>/dev/null && wait "$hub" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
SENDENSE_DATA_DIR="$dir" SENDENSE_API_PORT="$port" SENDENSE_SSH_PORT=0 SENDENSE_SSH_BIND=127.0.0.1 SENDENSE_ADMIN_TOKEN="$token" \
  SENDENSE_LOG_LEVEL=warn node bin/sendense.js hub >"$dir/hub.log" 2>&1 &
hub=$!
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break
  kill -0 "$hub" 2>/dev/null || { cat "$dir/hub.log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/docs-json" >"$dir/openapi.json"
node_modules/.bin/openapi-typescript "$dir/openapi.json" -o console/src/api/schema.d.ts
