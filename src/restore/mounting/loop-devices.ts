import { isWithin } from './work-dir-layout';
import { runTool } from './run-tool';

export interface LoopDevice {
  name: string;
  backFile: string;
  offset: number;
  sizeLimit: number;
  readOnly: boolean;
}

/**
 * -r makes the block device itself read-only, so not even a filesystem
 * driver that ignores "ro" (journal replay, FUSE drivers) can write through
 * it. The offset and size limit carve one partition out of the disk file,
 * because this kernel has no partition parsers for loop devices.
 * --direct-io=on: without it every block is cached twice (loop device and
 * the nbdfuse file); reads of a large file ran about 1.5x faster with it
 * here. The kernel silently falls back to buffered I/O where it cannot.
 */
export async function attachReadOnlyLoop(file: string, offset: number, size: number): Promise<string> {
  const { stdout } = await runTool('losetup', ['-r', '--direct-io=on', '-o', String(offset), '--sizelimit', String(size), '--show', '-f', file]);
  const device = stdout.trim();
  if (!device.startsWith('/dev/loop')) throw new Error(`losetup did not name a loop device for ${file} (got "${device}")`);
  return device;
}

interface LosetupJson {
  loopdevices?: Array<{ name: string; 'back-file': string | null; offset: number | string; sizelimit: number | string; ro: boolean | string | number }>;
}

/** The kernel appends " (deleted)" to the name of a backing file that was unlinked. */
function stripDeleted(path: string): string {
  return path.endsWith(' (deleted)') ? path.slice(0, -' (deleted)'.length) : path;
}

export function parseLosetupJson(text: string): LoopDevice[] {
  if (!text.trim()) return [];
  const parsed = JSON.parse(text) as LosetupJson;
  return (parsed.loopdevices ?? []).map((d) => ({
    name: d.name,
    backFile: stripDeleted(d['back-file'] ?? ''),
    offset: Number(d.offset),
    sizeLimit: Number(d.sizelimit),
    readOnly: d.ro === true || d.ro === '1' || d.ro === 1,
  }));
}

export async function listLoopDevices(): Promise<LoopDevice[]> {
  const { stdout } = await runTool('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE,OFFSET,SIZELIMIT,RO']);
  return parseLosetupJson(stdout);
}

export async function loopDevicesBackedWithin(dir: string): Promise<LoopDevice[]> {
  return (await listLoopDevices()).filter((d) => d.backFile !== '' && isWithin(dir, d.backFile));
}

/** Idempotent: a device that is already free (or gone) counts as detached. */
export async function detachLoop(device: string): Promise<void> {
  const result = await runTool('losetup', ['-d', device], { acceptExitCodes: [0, 1] });
  if (result.exitCode !== 0 && !/No such device|not a loop device|No such file/i.test(result.stderr)) {
    const stillAttached = (await listLoopDevices()).some((d) => d.name === device);
    if (stillAttached) throw new Error(`losetup -d ${device} failed: ${result.stderr.trim()}`);
  }
}
