import { hash, randomBytes } from 'node:crypto';
import { promises as fs, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRunningState, readProcStat } from '../../process/proc';
import { bootId, createFileAtomic, removeDurably, removeStaleTemps } from '../qcow2/durable-fs';

/*
 * Who may touch a chunk store's packs at once (docs/design/storage.md, garbage collection): any number of writers,
 * or one garbage collection, never both. Node has no flock, and a store may be shared by several hubs, so each side
 * announces itself with a file of its own, `writers/<owner>` or `gc/<owner>`, and then looks for the other side:
 * a writer registers and then looks for a collection, a collection marks itself and then looks for writers. Whoever
 * comes second sees the first, so the two never both go on (both may back off, and try again).
 *
 * An owner is a process of a host's boot: pid, start time (a reused pid has another) and a tag of host name and boot
 * id, which a file's name holds. The files of a dead owner of this host are stale and removed by whoever finds them; those of another host
 * cannot be judged from here and count as alive, until that host's own writers or collections remove them.
 * Each owner's file has a name of its own, so removing a stale one never removes a live one that replaced it.
 */

const WRITERS = 'writers';
const COLLECTIONS = 'gc';
const OWNER_NAME = /^(\d+)-(\d+)-([0-9a-f]{12})-[0-9a-f]{8}$/;
const POLL_MS = 50;
/** How long a writer waits for a collection before it gives up: a collection only reads indexes and unlinks files. */
export const DEFAULT_WRITER_WAIT_MS = 10 * 60 * 1000;

interface Owner {
  host: string;
  pid: number;
  startTime: string;
}

export class StoreBusyError extends Error {}

const thisHost = hostname();
const hostTag = hash('sha256', `${thisHost}\n${bootId()}`, 'hex').slice(0, 12);

function me(): { name: string; owner: Owner } {
  const stat = readProcStat(process.pid);
  if (!stat) throw new Error(`/proc/${process.pid}/stat cannot be read: a chunk store's writers and collections are told apart by it`);
  // a random end: two collections (or writers) of one process each have a file of their own
  return { name: `${process.pid}-${stat.startTime}-${hostTag}-${randomBytes(4).toString('hex')}`, owner: { host: thisHost, pid: process.pid, startTime: stat.startTime } };
}

/** Whether the owner of a writer's or collection's file may still be at work. */
async function alive(file: string, name: string): Promise<boolean> {
  const parsed = OWNER_NAME.exec(name);
  if (parsed && parsed[3] === hostTag) {
    const stat = readProcStat(Number(parsed[1]));
    return stat !== undefined && isRunningState(stat.state) && stat.startTime === parsed[2];
  }
  const owner = await fs
    .readFile(file, 'utf8')
    .then((text) => JSON.parse(text) as Partial<Owner> | null)
    .catch(() => null);
  // this host's name under another boot tag: written before a reboot, its process is gone
  return !(parsed && owner?.host === thisHost);
}

/** The live owners' files in `writers/` or `gc/`, but `except` (the caller's own); stale ones are removed on the way. */
async function liveOwners(storeDir: string, kind: string, except: string): Promise<string[]> {
  const dir = join(storeDir, kind);
  const live: string[] = [];
  // only a directory not made yet is empty: one that cannot be read must not pass for free of writers
  const names = await fs.readdir(dir).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? [] : Promise.reject(error)));
  await removeStaleTemps(dir);
  for (const name of names) {
    if (name === except || name.startsWith('.')) continue;
    const file = join(dir, name);
    if (await alive(file, name)) live.push(name);
    else await removeDurably(file);
  }
  return live;
}

async function announce(storeDir: string, kind: string): Promise<string> {
  const { name, owner } = me();
  const dir = join(storeDir, kind);
  await fs.mkdir(dir, { recursive: true, mode: 0o750 });
  const file = join(dir, name);
  await createFileAtomic(file, `${JSON.stringify({ ...owner, since: new Date().toISOString() })}\n`);
  return file;
}

/** A writer's registration: `release` ends it (also at the process's exit, if it was not released before). */
export interface WriterRegistration {
  release(): Promise<void>;
}

/**
 * Registers this process as a writer of the store before it opens it: from here until `release` no collection starts.
 * A collection under way is waited for (polled every 50 ms, up to `waitMs`), without a registration meanwhile, so the
 * collection is not told to stop; after `waitMs` this fails with StoreBusyError.
 */
export async function registerWriter(storeDir: string, options: { waitMs?: number } = {}): Promise<WriterRegistration> {
  const deadline = performance.now() + (options.waitMs ?? DEFAULT_WRITER_WAIT_MS);
  for (;;) {
    const file = await announce(storeDir, WRITERS);
    const collections = await liveOwners(storeDir, COLLECTIONS, '').catch(async (error: unknown) => {
      await removeDurably(file);
      throw error;
    });
    if (!collections.length) return registration(file);
    await removeDurably(file);
    if (performance.now() >= deadline) throw new StoreBusyError(`the chunk store ${storeDir} was being garbage-collected (by ${collections.join(', ')}) for longer than ${options.waitMs ?? DEFAULT_WRITER_WAIT_MS} ms: no point can be written into it meanwhile`);
    await sleep(POLL_MS);
  }
}

function registration(file: string): WriterRegistration {
  const atExit = () => rmSync(file, { force: true });
  process.once('exit', atExit);
  let released: Promise<void> | null = null;
  return {
    release: () =>
      (released ??= (async () => {
        process.removeListener('exit', atExit);
        await removeDurably(file);
      })()),
  };
}

/** A collection's hold on the store, or why it has none: other live writers or collections, by their files' names. */
export type CollectionLock = { held: true; release(): Promise<void> } | { held: false; writers: string[]; collections: string[] };

/**
 * Marks the store as being collected, then looks for live writers and other collections: if there is any, the mark is
 * removed at once and nothing is held. Stale registrations and marks (of dead processes of this host) are removed.
 */
export async function lockForCollection(storeDir: string): Promise<CollectionLock> {
  const file = await announce(storeDir, COLLECTIONS);
  const name = file.slice(file.lastIndexOf('/') + 1);
  const atExit = () => rmSync(file, { force: true });
  process.once('exit', atExit);
  const release = async () => {
    process.removeListener('exit', atExit);
    await removeDurably(file);
  };
  let others: { writers: string[]; collections: string[] };
  try {
    others = { collections: await liveOwners(storeDir, COLLECTIONS, name), writers: await liveOwners(storeDir, WRITERS, '') };
  } catch (error) {
    await release();
    throw error;
  }
  if (!others.collections.length && !others.writers.length) return { held: true, release };
  await release();
  return { held: false, ...others };
}
