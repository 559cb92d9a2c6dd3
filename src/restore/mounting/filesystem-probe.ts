import { runTool } from './run-tool';

export interface ProbeResult {
  /** blkid TYPE: ext4, xfs, vfat, ntfs, LVM2_member, swap...; null when nothing was recognised. */
  type: string | null;
  /** blkid USAGE: filesystem, raid, crypto, other. */
  usage: string | null;
  label: string | null;
  uuid: string | null;
  /** A nested partition table blkid found instead of a filesystem. */
  partitionTableType: string | null;
  /** Several signatures matched: blkid refuses to pick one, and so do we. */
  ambiguous: boolean;
}

/** blkid -o export escapes shell-special characters with a backslash. */
function unescapeExportValue(value: string): string {
  return value.replace(/\\(.)/g, '$1');
}

export function parseBlkidExport(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq)] = unescapeExportValue(line.slice(eq + 1));
  }
  return fields;
}

const NOTHING_FOUND = 2;
const AMBIGUOUS = 8;

/**
 * -p probes the bytes themselves (no blkid cache, which describes host
 * devices, not our file); --offset/--size confine it to one partition of
 * the disk file, so no loop device is needed just to look.
 */
export async function probeFilesystem(diskFile: string, offset: number, size: number): Promise<ProbeResult> {
  const result = await runTool('blkid', ['-p', '-o', 'export', '--offset', String(offset), '--size', String(size), diskFile], { acceptExitCodes: [0, NOTHING_FOUND, AMBIGUOUS] });
  const empty: ProbeResult = { type: null, usage: null, label: null, uuid: null, partitionTableType: null, ambiguous: false };
  if (result.exitCode === NOTHING_FOUND) return empty;
  if (result.exitCode === AMBIGUOUS) return { ...empty, ambiguous: true };
  const f = parseBlkidExport(result.stdout);
  return { type: f.TYPE ?? null, usage: f.USAGE ?? null, label: f.LABEL ?? null, uuid: f.UUID ?? null, partitionTableType: f.PTTYPE ?? null, ambiguous: false };
}
