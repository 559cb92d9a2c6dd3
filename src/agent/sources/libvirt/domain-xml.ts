/**
 * Pure parts of the libvirt source: reading what it needs from libvirt's XML, writing the backup and
 * checkpoint documents, and the full-or-incremental rule. libvirt's XML is machine-written and regular;
 * these readers take only the elements named here and are unit-tested on real `virsh` output.
 */

/** One `<disk>` of a domain as the source sees it. */
export interface DomainDisk {
  /** The target device (`vda`): the disk's id towards the hub, its export name and its bitmap suffix. */
  target: string;
  /** `file`, `block`, `network`, `volume`, ... */
  type: string;
  /** `disk`, `cdrom`, `floppy`, `lun`. */
  device: string;
  /** The driver's image format (`qcow2`, `raw`, ...), if given. */
  format: string | null;
  /** The source file, for `type='file'`. */
  file: string | null;
  readonly: boolean;
  /** Its backing chain holds a network layer: an instant recovery's overlay still reading from the hub's export. */
  readsFromNetwork: boolean;
}

export interface DomainInfo {
  uuid: string;
  name: string;
  disks: DomainDisk[];
  /** The DAC label (`+64055:+64055`) a running domain's qemu runs as: who must be able to reach the backup's socket and scratch files. */
  qemuUser: { uid: number; gid: number } | null;
  /** The domain has a virtio channel for qemu-guest-agent. */
  guestAgentChannel: boolean;
}

const attr = (tag: string, name: string): string | null => {
  const m = new RegExp(`\\s${name}=(['"])(.*?)\\1`).exec(tag);
  return m ? unescapeXml(m[2]) : null;
};

export function unescapeXml(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

/** Reads uuid, name, disks, the qemu user and the guest agent channel out of `virsh dumpxml`. */
export function parseDomainXml(xml: string): DomainInfo {
  // Checkpoints and snapshots embed a whole <domain>: only the outermost one's <devices> is ours.
  const uuid = /<uuid>([^<]+)<\/uuid>/.exec(xml)?.[1]?.trim();
  const name = /<name>([^<]+)<\/name>/.exec(xml)?.[1]?.trim();
  if (!uuid || !name) throw new Error('domain XML has no <uuid> or <name>');
  const domainName = unescapeXml(name);
  const devices = /<devices>([\s\S]*?)<\/devices>/.exec(xml)?.[1] ?? '';
  const disks: DomainDisk[] = [];
  for (const m of devices.matchAll(/<disk\b([^>]*)>([\s\S]*?)<\/disk>/g)) {
    const open = `<disk${m[1]}>`;
    const body = m[2];
    const driver = /<driver\b[^>]*>/.exec(body)?.[0] ?? '';
    const source = /<source\b[^>]*>/.exec(body)?.[0] ?? '';
    const target = /<target\b[^>]*>/.exec(body)?.[0] ?? '';
    disks.push({
      target: attr(target, 'dev') ?? '',
      type: attr(open, 'type') ?? 'file',
      device: attr(open, 'device') ?? 'disk',
      format: attr(driver, 'type'),
      file: attr(source, 'file'),
      readonly: /<readonly\s*\/>/.test(body),
      readsFromNetwork: readsFromNetwork(body),
    });
  }
  const dac = /<seclabel\b[^>]*model=['"]dac['"][^>]*>([\s\S]*?)<\/seclabel>/.exec(xml)?.[1] ?? '';
  const label = /<label>\+?(\d+):\+?(\d+)<\/label>/.exec(dac);
  const guestAgentChannel = /<channel\b[\s\S]*?<target\b[^>]*name=['"]org\.qemu\.guest_agent\.0['"]/.test(devices);
  return { uuid, name: domainName, disks, qemuUser: label ? { uid: Number(label[1]), gid: Number(label[2]) } : null, guestAgentChannel };
}

/** A `<disk>` element's body names a network layer in its backing chain. */
export function readsFromNetwork(diskBody: string): boolean {
  return /<backingStore\b[^>]*type=['"]network['"]/.test(diskBody);
}

/**
 * A drive that holds no guest data of its own: a CD-ROM or floppy, or a drive with no medium. Skipping it loses
 * nothing; every other disk skipped is data a restore would lack, and the job says so.
 */
export function holdsNoData(disk: DomainDisk): boolean {
  return disk.device === 'cdrom' || disk.device === 'floppy' || (disk.type === 'file' && !disk.file);
}

/** Why a disk is not backed up, or null when it is (file-backed qcow2 or raw, a real disk). */
export function skipReason(disk: DomainDisk): string | null {
  if (disk.device !== 'disk') return `${disk.device} devices are not backed up`;
  if (disk.type !== 'file') return `type='${disk.type}' disks are not supported (only file-backed images)`;
  if (!disk.file) return 'the disk has no source file (empty drive)';
  if (disk.format !== 'qcow2' && disk.format !== 'raw') return `format ${disk.format ?? 'unknown'} is not supported (qcow2 and raw only)`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(disk.target)) return `target ${JSON.stringify(disk.target)} cannot serve as a disk id`;
  return null;
}

/** `<domainbackup mode='pull'>`: every disk exported over one Unix socket, each with its scratch file. */
export function backupXml(opts: { incremental: string | null; socket: string; disks: Array<{ target: string; scratch: string }> }): string {
  const disks = opts.disks.map((d) => `<disk name='${escapeXml(d.target)}' backup='yes' type='file'><scratch file='${escapeXml(d.scratch)}'/></disk>`).join('');
  const incremental = opts.incremental ? `<incremental>${escapeXml(opts.incremental)}</incremental>` : '';
  return `<domainbackup mode='pull'>${incremental}<server transport='unix' socket='${escapeXml(opts.socket)}'/><disks>${disks}</disks></domainbackup>`;
}

/** The checkpoint made at the backup's instant: a bitmap per disk, the base of the next incremental. */
export function checkpointXml(name: string, targets: string[]): string {
  return `<domaincheckpoint><name>${escapeXml(name)}</name><disks>${targets.map((t) => `<disk name='${escapeXml(t)}' checkpoint='bitmap'/>`).join('')}</disks></domaincheckpoint>`;
}

/** The disks a checkpoint holds a bitmap for (`virsh checkpoint-dumpxml --no-domain`). */
export function checkpointDisks(xml: string): string[] {
  // without --no-domain the document embeds the domain, whose <disk> elements are not the checkpoint's
  const own = xml.split(/<domain[\s>]/)[0];
  return [...own.matchAll(/<disk\b[^>]*>/g)].filter((m) => attr(m[0], 'checkpoint') === 'bitmap').map((m) => attr(m[0], 'name') ?? '');
}

/**
 * The disks of a checkpoint whose bitmap qemu does not hold (`virsh checkpoint-dumpxml --no-domain --size`):
 * libvirt gives each bitmap it finds in the running qemu a size. A checkpoint libvirt recorded whose bitmap
 * qemu lost (qemu killed, the host crashed: new bitmaps reach the image only when qemu closes it) has none,
 * and an incremental from it fails in backup-begin ("missing or broken bitmap").
 */
export function checkpointDisksWithoutBitmap(xmlWithSizes: string): string[] {
  const own = xmlWithSizes.split(/<domain[\s>]/)[0];
  return [...own.matchAll(/<disk\b[^>]*>/g)].filter((m) => attr(m[0], 'checkpoint') === 'bitmap' && attr(m[0], 'size') === null).map((m) => attr(m[0], 'name') ?? '');
}

/** The socket of the running backup job (`virsh backup-dumpxml`), or null. */
export function backupSocket(xml: string): string | null {
  const server = /<server\b[^>]*>/.exec(xml)?.[0];
  return server ? attr(server, 'socket') : null;
}

export interface LiveChainState {
  /** Backed-up disks by target, with their format. */
  disks: Array<{ target: string; format: string }>;
  /** Checkpoints of ours on the domain, each with the disks it has a bitmap on, and those whose bitmap qemu lost when known. */
  checkpoints: Array<{ name: string; disks: string[]; lostBitmaps?: string[] }>;
}

/**
 * Incremental since P only if P's checkpoint exists and holds a bitmap on every disk now backed up (a raw
 * disk cannot): libvirt then exports exactly what changed since P's instant, on every disk.
 */
export function decideLive(state: LiveChainState, sinceCheckpoint: string | null): { mode: 'full' | 'incremental'; reason: string | null } {
  if (sinceCheckpoint === null) return { mode: 'full', reason: 'no previous restore point to continue from' };
  const raw = state.disks.find((d) => d.format !== 'qcow2');
  if (raw) return { mode: 'full', reason: `disk ${raw.target} is ${raw.format}: it cannot keep checkpoint bitmaps (full backups only)` };
  const cp = state.checkpoints.find((c) => c.name === sinceCheckpoint);
  if (!cp) return { mode: 'full', reason: `checkpoint ${sinceCheckpoint} does not exist on the domain (deleted, or the last backup was taken while it was shut off)` };
  const missing = state.disks.filter((d) => !cp.disks.includes(d.target));
  if (missing.length) return { mode: 'full', reason: `checkpoint ${sinceCheckpoint} has no bitmap on ${missing.map((d) => d.target).join(', ')} (disk added since)` };
  if (cp.lostBitmaps?.length) return { mode: 'full', reason: `checkpoint ${sinceCheckpoint} is broken: qemu holds no bitmap for ${cp.lostBitmaps.join(', ')} (the domain's qemu ended without saving it: killed, or the host crashed)` };
  return { mode: 'incremental', reason: null };
}

/** The UEFI variables file of a domain (`<os><nvram>PATH</nvram>`), or null when it has none. */
export function nvramPath(xml: string): string | null {
  const os = /<os\b[^>]*>([\s\S]*?)<\/os>/.exec(xml)?.[1] ?? '';
  const m = /<nvram\b[^>]*>([^<]+)<\/nvram>/.exec(os);
  return m ? unescapeXml(m[1].trim()) : null;
}

/** Whether the domain has a TPM emulated by swtpm, whose state lives on the host (`/var/lib/libvirt/swtpm/<uuid>`). */
export function hasEmulatedTpm(xml: string): boolean {
  const devices = /<devices>([\s\S]*?)<\/devices>/.exec(xml)?.[1] ?? '';
  return /<tpm\b[\s\S]*?<backend\b[^>]*type=['"]emulator['"]/.test(devices);
}
