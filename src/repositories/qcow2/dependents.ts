import { promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { jsonImageFile } from '../../qemu/image-keys';
import { readBackingFileName } from '../../qemu/qcow2-header';

export class ChainSurgeryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChainSurgeryError';
  }
}

/**
 * Where the image's backing file is, resolved the way qemu resolves it (against the image's directory). A json:
 * name is the file it opens: an encrypted rebase cut short between its two steps leaves one (qemu-img.ts, rebase).
 */
export async function backingPathOf(file: string): Promise<string | null> {
  const stored = await readBackingFileName(file);
  if (stored === null) return null;
  return resolve(dirname(file), jsonImageFile(stored) ?? stored);
}

/**
 * Images in the same directory whose backing file is `file`. The repository keeps a disk's whole chain in
 * one directory, so that is where anything that would break by changing `file` can live. Files whose header
 * cannot be read are skipped: qemu cannot open them either, so nothing can be reading through them.
 */
export async function findDependents(file: string): Promise<string[]> {
  const target = resolve(file);
  const dir = dirname(target);
  const names = (await fs.readdir(dir)).filter((name) => name.endsWith('.qcow2') && !name.startsWith('.') && name !== basename(target));
  const dependents: string[] = [];
  for (const name of names.sort()) {
    const candidate = join(dir, name);
    const backing = await backingPathOf(candidate).catch(() => null);
    if (backing === target) dependents.push(candidate);
  }
  return dependents;
}
