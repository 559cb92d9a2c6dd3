#!/usr/bin/env bash
# Installs the Debian packages Sendense needs (run as root on Debian 12 or newer).
# Idempotent: apt runs only when something is missing.
set -euo pipefail

PACKAGES=(
  qemu-utils      # qemu-img, qemu-nbd, qemu-io: QCOW2 chains and NBD exports
  libnbd-bin      # nbdinfo, nbdcopy (reference tool in benchmarks), nbdfuse
  nbdkit          # the agent's NBD proxy for instant recovery and drills; a second NBD server the client is tested against
  fuse3           # FUSE for file-level restore
  xfsprogs        # XFS in restore tests
  btrfs-progs     # mkfs.btrfs for the btrfs restore test image (mounting uses the kernel driver only)
  dosfstools      # vfat in restore tests
  fusefat         # vfat through FUSE (the kernel may lack vfat)
  ntfs-3g         # NTFS through FUSE
  openssh-client  # ssh-keygen for agent keys
  e2fsprogs       # mkfs.ext4 -d for test images
  fdisk           # sfdisk for partition tables
  procps          # pgrep/pkill used by operators and tests
  mtools          # vfat test images (mcopy)
  libarchive-tools # bsdtar writes zip archives of restored directories
  qemu-system-x86 # runs the libvirt test guest (TCG) and the domains the libvirt source backs up
  libvirt-daemon-system # libvirtd: backup-begin (pull mode), checkpoints, guest agent calls
  libvirt-clients # virsh: the libvirt source drives libvirt through it
  cpio            # packs the libvirt test guest's initramfs
  libfaketime     # moves a test hub's clock (retention e2e: one backup per simulated 8 hours)
  virtnbdbackup   # the peer the restore-vm bench measures against (virtnbdbackup, virtnbdrestore)
  restic          # a peer the store bench measures bytes stored against
  borgbackup      # the other peer the store bench measures bytes stored against
  chromium        # the web console's browser tests (driven by playwright-core)
  fonts-dejavu-core # text in the console's screenshots
  curl            # the demo, its examples (docs/operations.md) and the restore bench call the hub's HTTP API with it
  unzip           # the restore tests extract the zip archives the hub serves
  golang-go       # builds the vcsim launcher (test/fixtures/vcsim) the VMware source is tested against
  golang-github-vmware-govmomi-dev # govmomi's vCenter simulator (vcsim), the library that launcher is built from
  golang-github-google-uuid-dev # a dependency of govmomi's simulator, for the same build
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# /dev/kvm as Debian's udev rules leave it (root:kvm 0660). Where nothing applied them (a container, no udev),
# a root-only /dev/kvm makes libvirtd think KVM vanished since it probed qemu, and it probes again on every
# define (about 30 s each).
if [ -c /dev/kvm ] && getent group kvm >/dev/null && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# embedded-postgres is ESM-only; Node 20.19+ loads it from CommonJS.
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
  echo "install-deps.sh: Node.js 20.19 or newer is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
echo "dependencies ready: qemu-img $(qemu-img --version | head -1 | awk '{print $3}'), node $(node --version)"
