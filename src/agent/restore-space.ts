import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { RestoreCheckRequest } from '../wire/restore-protocol';
import { Refusal } from './refusal';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

const size = (n: number) => (n >= GiB ? `${(n / GiB).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`);

/**
 * The disks a restore writes, held against the free space of each directory they go to, before the hub records
 * it: a restore that cannot fit is refused (422) rather than accepted and failed half-written. What each disk
 * needs is the hub's measure of the point; a disk it could not measure is not counted. Written into a directory
 * others write to as well, a restore that fitted here can still run out: the copy then fails saying so.
 */
export async function checkFreeSpace(plans: { diskId: string; write: string }[], disks: RestoreCheckRequest['disks']): Promise<void> {
  const needs = new Map<string, { bytes: number; diskIds: string[] }>();
  for (const plan of plans) {
    const required = disks.find((d) => d.diskId === plan.diskId)?.requiredBytes;
    if (required === undefined) continue;
    const dir = dirname(plan.write);
    const need = needs.get(dir) ?? { bytes: 0, diskIds: [] };
    need.bytes += required;
    need.diskIds.push(plan.diskId);
    needs.set(dir, need);
  }
  for (const [dir, need] of needs) {
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    if (need.bytes > free) {
      throw new Refusal(422, `not enough space in ${dir}: disk(s) ${need.diskIds.join(', ')} of the point need ${size(need.bytes)} (qemu-img measure on the hub), ${size(free)} are free`);
    }
  }
}
