#!/usr/bin/env bash
# The newcomer's first run, on embedded defaults (no database to install):
#   1. builds a sample VM: two qcow2 disks holding ext4 filesystems with files,
#   2. starts the hub (embedded PostgreSQL under the data dir) and an agent,
#      connected over the hub's SSH endpoint,
#   3. registers a repository, runs a full and then an incremental backup with
#      live progress, lists the restore points,
#   4. gives data back: a file from the first point (its SHA-256 checked against the
#      original's) and the newest point's disk as a raw image (checked with qemu-img compare),
#   5. fills the console: a second repository (compressed and deduplicated) with a point,
#      a policy, and a backup that fails on purpose (a VM whose disk file is moved away),
#   6. prints the console's address and how to log in, then stops agent and hub cleanly.
#      With --keep-running they stay up until Ctrl-C.
# Running it again reuses the VM, hub data and agent: both backups are then incrementals.
set -euo pipefail
cd "$(dirname "$0")/.."

keep_running=false
[ "${1:-}" = "--keep-running" ] && keep_running=true

data_dir="${SENDENSE_DATA_DIR:-$PWD/var}"
# As root the embedded database runs as user 'postgres', which must be able to reach the data dir.
if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 && ! su -s /bin/sh postgres -c "test -x '$(dirname "$data_dir")'" 2>/dev/null; then
  data_dir=/var/lib/sendense-demo
  echo "note: $PWD is not reachable by the database user 'postgres'; using SENDENSE_DATA_DIR=$data_dir"
fi
export SENDENSE_DATA_DIR="$data_dir"
export SENDENSE_API_PORT="${SENDENSE_API_PORT:-8082}"
export SENDENSE_SSH_PORT="${SENDENSE_SSH_PORT:-2222}"
export SENDENSE_HUB="http://127.0.0.1:$SENDENSE_API_PORT"
export SENDENSE_AGENT_DIR="$data_dir/demo/agent"
demo="$data_dir/demo"
sendense() { node bin/sendense.js "$@"; }
api() { curl -sf -H "Authorization: Bearer $SENDENSE_TOKEN" "$SENDENSE_HUB/api/v1/$1"; }
# json EXPR: EXPR evaluated on the JSON of stdin as r, printed.
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);process.stdout.write(String('"$1"'))})'; }
mkdir -p "$demo"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "sample VM 'demo-vm': two disks with ext4 filesystems ($demo/vm)"
# A VM built by an older demo (without the files' checksums) is built again.
if [ ! -f "$demo/vm/disk0.sha256" ]; then
  rm -rf "$demo/vm"
  mkdir -p "$demo/vm"
  for i in 0 1; do
    tree="$demo/vm/tree$i"
    mkdir -p "$tree/etc" "$tree/home/demo"
    echo "demo-vm disk$i" > "$tree/etc/hostname"
    for n in $(seq 1 20); do head -c $((n * 40000)) /dev/urandom > "$tree/home/demo/file$n.bin"; done
    (cd "$tree" && sha256sum home/demo/*.bin) > "$demo/vm/disk$i.sha256"
    truncate -s $((256 + 128 * i))M "$demo/vm/disk$i.raw"
    mkfs.ext4 -q -F -d "$tree" -L "disk$i" "$demo/vm/disk$i.raw"
    qemu-img convert -q -f raw -O qcow2 "$demo/vm/disk$i.raw" "$demo/vm/disk$i.qcow2"
    rm -rf "$demo/vm/disk$i.raw" "$tree"
  done
  qemu-img create -q -f qcow2 "$demo/vm/vm2-disk0.qcow2" 64M
  cat > "$demo/vm/inventory.json" <<JSON
{"vms":[{"id":"demo-vm","name":"demo-vm","disks":[{"id":"disk0","path":"$demo/vm/disk0.qcow2"},{"id":"disk1","path":"$demo/vm/disk1.qcow2"}]},
       {"id":"demo-vm2","name":"demo-vm2","disks":[{"id":"disk0","path":"$demo/vm/vm2-disk0.qcow2"}]}]}
JSON
fi
ls -l "$demo/vm"/*.qcow2

say "starting the hub on $SENDENSE_HUB (log: $demo/hub.log)"
node bin/sendense.js hub > "$demo/hub.log" 2>&1 &
hub_pid=$!
agent_pid=""
stop_all() {
  [ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  kill -TERM "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null || true
}
trap 'stop_all' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in $(seq 1 100); do curl -sf "$SENDENSE_HUB/api/v1/health" >/dev/null && break; sleep 0.2; done
curl -sf "$SENDENSE_HUB/api/v1/health" || { echo "the hub did not start; see $demo/hub.log"; tail -20 "$demo/hub.log"; exit 1; }
echo
export SENDENSE_TOKEN="$(cat "$data_dir/admin.token")"

if [ ! -f "$SENDENSE_AGENT_DIR/agent.json" ]; then
  say "registering an agent"
  sendense agent register --hub "$SENDENSE_HUB" --name demo-agent
fi
say "starting the agent (log: $demo/agent.log)"
node bin/sendense.js agent run --inventory "$demo/vm/inventory.json" > "$demo/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 1 150); do
  curl -sf -H "Authorization: Bearer $SENDENSE_TOKEN" "$SENDENSE_HUB/api/v1/vms" | grep -q '"agentConnected":true' && break
  sleep 0.2
done

say "repository"
repo_id=$(api repositories | json 'r.find(x=>x.name==="demo")?.repositoryId ?? ""')
if [ -z "$repo_id" ]; then
  sendense repository add --name demo --path "$data_dir/repositories/demo"
  repo_id=$(api repositories | json 'r.find(x=>x.name==="demo").repositoryId')
fi
echo "repository demo: $repo_id ($data_dir/repositories/demo)"

say "first backup (full on a new chain)"
sendense backup start --vm demo-vm --repository "$repo_id" --type auto --wait

say "the VM writes: 8 MiB on disk0, 1 MiB on disk1 (qemu-io, recorded by the dirty bitmaps)"
qemu-io -f qcow2 -c "write -P 0x5a 16M 8M" "$demo/vm/disk0.qcow2" | tail -1
qemu-io -f qcow2 -c "write -P 0xa5 100M 1M" "$demo/vm/disk1.qcow2" | tail -1

say "second backup (incremental: only the changed clusters travel)"
sendense backup start --vm demo-vm --repository "$repo_id" --type auto --wait

say "restore points of demo-vm"
sendense restore-points list --vm demo-vm --repository "$repo_id"
points=$(api "vms/demo-vm/restore-points?repositoryId=$repo_id" | json 'r.map(p=>p.restorePointId).join(" ")')
first_point=${points%% *}
newest_point=${points##* }

restored="$demo/restored"
rm -rf "$restored" && mkdir -p "$restored"
say "file-level restore: home/demo/file7.bin of disk0 from the first point ($first_point)"
sendense restore mount "$first_point" --disk disk0 | tee "$restored/mount.txt"
mount_id=$(sed -n 's/^mount \([^:]*\):.*/\1/p' "$restored/mount.txt")
sendense restore ls "$mount_id" home/demo | head -4
sendense restore get "$mount_id" home/demo/file7.bin -o "$restored/file7.bin"
sendense restore unmount "$mount_id"
want=$(awk '$2 == "home/demo/file7.bin" { print $1 }' "$demo/vm/disk0.sha256")
got=$(sha256sum "$restored/file7.bin" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "FAILED: the restored file's SHA-256 is $got, the original's $want"; exit 1; }
echo "check passed: SHA-256 $got, equal to the original file's"

say "disk restore: disk0 of the newest point ($newest_point) as a raw image"
sendense restore disk "$newest_point" --disk disk0 -o "$restored/disk0.raw" --format raw
qemu-img compare -f raw -F qcow2 "$restored/disk0.raw" "$demo/vm/disk0.qcow2"
echo "check passed: qemu-img compare finds the image equal to the VM's disk0"

say "a second repository, compressed and deduplicated (layout chunks), and a full backup into it"
chunks_id=$(api repositories | json 'r.find(x=>x.name==="demo-chunks")?.repositoryId ?? ""')
if [ -z "$chunks_id" ]; then
  sendense repository add --name demo-chunks --path "$data_dir/repositories/demo-chunks" --layout chunks
  chunks_id=$(api repositories | json 'r.find(x=>x.name==="demo-chunks").repositoryId')
fi
sendense backup start --vm demo-vm --repository "$chunks_id" --type full --wait

say "a policy: demo-vm every night at 02:00 into the first repository, 7 daily points kept"
if [ -z "$(api policies | json 'r.find(x=>x.name==="demo-nightly")?.policyId ?? ""')" ]; then
  sendense policy add --name demo-nightly --repository "$repo_id" --cron "0 2 * * *" --vm demo-vm --rpo-hours 26 --keep-daily 7
fi

say "a backup that fails on purpose: demo-vm2's disk file is moved away first"
mv "$demo/vm/vm2-disk0.qcow2" "$demo/vm/vm2-disk0.moved"
if sendense backup start --vm demo-vm2 --repository "$repo_id" --type full --wait; then
  mv "$demo/vm/vm2-disk0.moved" "$demo/vm/vm2-disk0.qcow2"
  echo "FAILED: the backup of a VM without its disk file did not fail"; exit 1
fi
mv "$demo/vm/vm2-disk0.moved" "$demo/vm/vm2-disk0.qcow2"
echo "(failed as intended: the console shows it under Jobs, with its reason)"

say "jobs"
sendense backup list | head -6

console_url="$SENDENSE_HUB/console/"
if $keep_running; then
  say "console: $console_url (log in with the admin token: cat $data_dir/admin.token). API $SENDENSE_HUB, OpenAPI at $SENDENSE_HUB/api/docs. Ctrl-C stops hub and agent cleanly."
  wait "$hub_pid"
else
  say "stopping the agent and the hub; run \`npm run demo -- --keep-running\` to keep them up"
  echo "console: $console_url (log in with the admin token: cat $data_dir/admin.token)"
fi
