import { promises as fs } from 'node:fs';
import { convert, measure } from '../../qemu/qemu-img';

const GiB = 1024 ** 3;

/** Why a qcow2 of `requiredBytes` cannot be built where `freeBytes` are left, or null when it fits. */
export function spaceRefusal(requiredBytes: number, freeBytes: number, where: string): string | null {
  if (requiredBytes <= freeBytes) return null;
  const gib = (n: number) => `${(n / GiB).toFixed(2)} GiB`;
  return `not enough space to build the qcow2 image in ${where}: it needs ${gib(requiredBytes)} (qemu-img measure), ${gib(freeBytes)} are free; download it as raw (format=raw), which needs no space on the hub`;
}

/** What the self-contained qcow2 of the chain needs (its data and metadata, not the zeroes) and what the work area has free. */
export async function measureQcow2(file: string, workArea: string): Promise<{ requiredBytes: number; freeBytes: number }> {
  const [{ required }, stats] = await Promise.all([measure({ file, format: 'qcow2' }, { outputFormat: 'qcow2' }), fs.statfs(workArea)]);
  return { requiredBytes: required, freeBytes: stats.bavail * stats.bsize };
}

/**
 * One qcow2 without a backing file holding what the point's top file reads through its chain.
 * qemu-img skips zero clusters (-S 4k by default), so the result is as thin as the data; the
 * conversion is killed when `signal` aborts (the client went away).
 */
export async function convertToQcow2(file: string, target: string, signal?: AbortSignal): Promise<void> {
  await convert(file, target, 'qcow2', { createOptions: 'compat=1.1', signal });
}
