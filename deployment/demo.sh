#!/usr/bin/env bash
# The newcomer's first run: starts the hub on its embedded defaults (embedded
# PostgreSQL under the data dir, events in PostgreSQL, API on 127.0.0.1:8082).
# Stop it with Ctrl-C: the hub shuts down its database cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir="${SENDENSE_DATA_DIR:-$PWD/var}"
# As root the embedded database runs as user 'postgres', which must be able to reach the data dir.
if [ "$(id -u)" -eq 0 ] && ! su -s /bin/sh postgres -c "test -x '$(dirname "$data_dir")'" 2>/dev/null; then
  data_dir=/var/lib/sendense-demo
  echo "note: $PWD is not reachable by the database user 'postgres'; using SENDENSE_DATA_DIR=$data_dir"
fi
export SENDENSE_DATA_DIR="$data_dir"

echo "starting the hub; admin token: $SENDENSE_DATA_DIR/admin.token; API: http://127.0.0.1:${SENDENSE_API_PORT:-8082}"
exec node bin/sendense.js hub
