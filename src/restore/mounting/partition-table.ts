import { promises as fs } from 'node:fs';
import { runTool } from './run-tool';

export interface DiskRegion {
  /** "p1", "p5"... for partitions; "disk" when the whole disk is one volume. */
  id: string;
  /** Partition number as the table numbers it (logical MBR partitions start at 5); 0 for the whole disk. */
  index: number;
  /** Bytes from the start of the disk. */
  start: number;
  size: number;
  /** GPT type GUID or MBR type code, as sfdisk reports it. */
  partitionType: string | null;
  partitionName: string | null;
}

export interface DiskLayout {
  /** "gpt", "dos", or "none" when no partition table was recognised. */
  table: string;
  diskSize: number;
  regions: DiskRegion[];
}

interface SfdiskJson {
  partitiontable: {
    label: string;
    device: string;
    sectorsize?: number;
    partitions?: Array<{ node: string; start: number; size: number; type?: string; name?: string }>;
  };
}

/** MBR container partitions hold the logical ones, which sfdisk lists separately; they hold no filesystem themselves. */
const MBR_EXTENDED_TYPES = new Set(['5', 'f', '85']);

export function parseSfdiskJson(text: string, diskSize: number): DiskLayout {
  const table = (JSON.parse(text) as SfdiskJson).partitiontable;
  const sectorSize = table.sectorsize ?? 512;
  const regions: DiskRegion[] = [];
  for (const p of table.partitions ?? []) {
    const type = p.type ?? null;
    if (table.label === 'dos' && type !== null && MBR_EXTENDED_TYPES.has(type.toLowerCase())) continue;
    if (!p.size) continue;
    // sfdisk names partitions <device><n>, or <device>p<n> when the device name ends in a digit.
    const index = Number(/(\d+)$/.exec(p.node.slice(table.device.length))?.[1] ?? regions.length + 1);
    regions.push({ id: `p${index}`, index, start: p.start * sectorSize, size: p.size * sectorSize, partitionType: type, partitionName: p.name ?? null });
  }
  return { table: table.label, diskSize, regions };
}

export function wholeDisk(diskSize: number): DiskLayout {
  return { table: 'none', diskSize, regions: [{ id: 'disk', index: 0, start: 0, size: diskSize, partitionType: null, partitionName: null }] };
}

/**
 * sfdisk rather than losetup -P: this kernel has no partition parsers, so
 * we read the table ourselves and mount each partition by offset. A disk
 * without a table (a filesystem straight on the disk) is one volume.
 */
export async function readDiskLayout(diskFile: string): Promise<DiskLayout> {
  const { size } = await fs.stat(diskFile);
  const result = await runTool('sfdisk', ['--json', diskFile], { acceptExitCodes: [0, 1] });
  if (result.exitCode === 0 && result.stdout.trim()) return parseSfdiskJson(result.stdout, size);
  if (/does not contain a recognized partition table/i.test(result.stderr)) return wholeDisk(size);
  throw new Error(`sfdisk could not read the partition table: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
}
