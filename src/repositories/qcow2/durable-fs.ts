import { hash, randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

/** A rename or unlink is only durable once the directory entry itself has been flushed. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Readers see the old content or the new content, never a torn file, even across a power cut. */
export async function writeFileAtomic(file: string, content: string | Buffer): Promise<void> {
  const tmp = await writeSyncedTemp(file, content);
  try {
    await fs.rename(tmp, file);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await fsyncDirectory(dirname(file));
}

/**
 * Like writeFileAtomic, but fails with EEXIST instead of replacing an existing file:
 * link(2) publishes the fully written temp file under the final name only if that name is free.
 */
export async function createFileAtomic(file: string, content: string | Buffer): Promise<void> {
  await publishExclusive(await writeSyncedTemp(file, content), file);
}

/** Publishes a fully written and synced temp file (see tempPathFor) under `file`, failing with EEXIST if that name is taken. */
export async function publishExclusive(tmp: string, file: string): Promise<void> {
  try {
    await fs.link(tmp, file);
  } finally {
    await fs.rm(tmp, { force: true });
  }
  await fsyncDirectory(dirname(file));
}

/**
 * Temp names start with a dot so directory listings of restore points and manifests skip them; removeStaleTemps knows
 * them. They carry the writer's pid and the tags of its host and of that host's boot: a repository may be shared by
 * hubs on several hosts (NFS), and a pid means something only on the host and boot that gave it.
 */
export function tempPathFor(file: string): string {
  return join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${HOST_TAG}${BOOT_TAG}-${randomBytes(4).toString('hex')}`);
}

/** The contents of /proc/sys/kernel/random/boot_id: another after every reboot. */
export function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

const tag = (text: string) => hash('sha256', text, 'hex').slice(0, 6);
const HOST_TAG = tag(hostname());
const BOOT_TAG = tag(`${hostname()}\n${bootId()}`);

/** Names written before temp names carried their host have no tags, and are judged as this host's, as they were. */
const TEMP_NAME = /^\..+\.tmp-(\d+)-(?:([0-9a-f]{6})([0-9a-f]{6})-)?[0-9a-f]{8}$/;

/** When this host booted (ms since the epoch; 0 when /proc cannot tell). */
function bootedAt(): number {
  try {
    return Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1] ?? 0) * 1000;
  } catch {
    return 0;
  }
}

/**
 * Temp files of atomic writes whose writer died (a SIGKILL between writing and renaming): the published file is the
 * old or the new content either way, so they are only litter. A temp file of a live process (this one, or another hub
 * on the same repository) is left alone, and so is one of another host, whose processes cannot be seen from here
 * (its own hub removes it). One of this host's name under another boot is litter once it is older than this boot:
 * written before a reboot (another host given the same name, a clone, writes its temps with fresh times). With
 * `of`, only the temps of files whose names start with it.
 */
export async function removeStaleTemps(dir: string, of = ''): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(`.${of}`)) continue;
    const parsed = TEMP_NAME.exec(name);
    if (!parsed || !(await isStale(join(dir, name), Number(parsed[1]), parsed[2], parsed[3]))) continue;
    await fs.rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

async function isStale(file: string, pid: number, host: string | undefined, boot: string | undefined): Promise<boolean> {
  if (host !== undefined && host !== HOST_TAG) return false;
  if (boot !== undefined && boot !== BOOT_TAG) {
    const booted = bootedAt();
    const modified = await fs.lstat(file).then((s) => s.mtimeMs, () => Infinity);
    return booted > 0 && modified < booted;
  }
  return pid > 0 && pid !== process.pid && !isAlive(pid);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function removeDurably(file: string): Promise<boolean> {
  try {
    await fs.unlink(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  await fsyncDirectory(dirname(file));
  return true;
}

export async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function writeSyncedTemp(file: string, content: string | Buffer): Promise<string> {
  const tmp = tempPathFor(file);
  const handle = await fs.open(tmp, 'wx', 0o644);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  return tmp;
}

/** A file's bytes, or null for a file that is not there (removed since it was listed, or never written). */
export function readFileIfPresent(file: string): Promise<Buffer | null> {
  return fs.readFile(file).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? null : Promise.reject(error)));
}

/** Offsets, lengths and buffer addresses every filesystem that takes O_DIRECT accepts. */
export const DIRECT_ALIGN = 4096;
// the part of the global this file uses (the project's libs leave out the DOM's, where it is declared)
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };

/**
 * `bytes` (a multiple of 64 KiB) of memory mapped on page boundaries: O_DIRECT wants the buffers it writes from
 * aligned, and a Buffer's own memory is aligned to 16 bytes only. A WebAssembly memory is mapped by pages of 64 KiB.
 */
export function pageAlignedBuffer(bytes: number): Buffer {
  const pages = bytes / (64 * 1024);
  if (!Number.isInteger(pages) || pages < 1) throw new RangeError(`aligned memory comes in 64 KiB pages, not ${bytes} bytes`);
  return Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer);
}
