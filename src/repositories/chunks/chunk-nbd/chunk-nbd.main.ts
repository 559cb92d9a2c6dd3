import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { NbdServer, NbdServerTls } from '../../../nbd-protocol/nbd-server';
import type { NbdPsk } from '../../../nbd-protocol/tls-psk';
import { ChunkPointView, ChunkPointWriter, ChunkStore } from '../chunk-store';
import { ChunkWorkers } from '../chunk-workers';
import { registerWriter, StoreBusyError, WriterRegistration } from '../store-lock';
import { ChunkNbdSpec, parseChunkNbdArgs } from './chunk-nbd-args';

/*
 * One chunk-store point served over NBD, in a process of its own, as qemu-nbd serves an image (README.md): it
 * starts, serves, and only then writes its pid file; a SIGTERM ends it, and in write mode commits the point first.
 * Nothing is written to stdout; a failure is one line on stderr and exit code 1.
 */

/** A failure whose message says it all: shown as it is. */
class StartupError extends Error {}

/** How soon a writer notices its hub is gone. */
const PARENT_CHECK_MS = 250;

async function main(): Promise<void> {
  // read before anything is awaited: a hub killed meanwhile must not be taken for the parent to watch
  const parent = process.ppid;
  const { spec, pidFile, hubPid } = parseOrExit(process.argv.slice(2));
  if (!('read' in spec.point)) abandonWithHub(spec.point.commit, hubPid ?? parent);
  const served = await start(spec).catch((error: unknown) => fail(error instanceof StartupError ? error.message : `cannot start: ${messageOf(error)}`));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void served.stop().then(
      () => process.exit(0),
      (error: unknown) => fail(messageOf(error)),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await writePidFile(pidFile).catch((error: unknown) => fail(`cannot write the pid file ${pidFile}: ${messageOf(error)}`));
}

/**
 * A writer's point is wanted only by the hub that started it: when that hub is gone (killed: this process is handed
 * to init or a subreaper), the backup it served is failed on the hub's restart, so the writer ends at once without
 * committing, rather than waiting to be found, and a point no job will record is never published. That holds from
 * the first moment: a hub killed while this process was starting leaves it, starting or serving, to end just the same.
 * A reader (an instant recovery's export) outlives its hub on purpose.
 */
function abandonWithHub(point: string, hub: number): void {
  const check = () => {
    if (process.ppid === hub) return;
    process.stderr.write(`chunk-nbd: the hub that started this writer (pid ${hub}) is gone: the point ${point} is not committed\n`);
    process.exit(1);
  };
  check();
  setInterval(check, PARENT_CHECK_MS).unref();
}

function parseOrExit(argv: string[]): ReturnType<typeof parseChunkNbdArgs> {
  try {
    return parseChunkNbdArgs(argv);
  } catch (error) {
    return fail(messageOf(error));
  }
}

/** The export serving, and how it ends: a writable one stops taking requests, lets those under way land, then commits. */
async function start(spec: ChunkNbdSpec): Promise<{ stop: () => Promise<void> }> {
  const stat = await fs.stat(spec.store).catch(() => null);
  if (!stat?.isDirectory()) throw new StartupError(`the store ${spec.store} does not exist`);
  const key = spec.keyFile === undefined ? null : await fs.readFile(spec.keyFile).catch((error: unknown) => Promise.reject(new StartupError(`cannot read the key file ${spec.keyFile}: ${messageOf(error)}`)));
  const tls = spec.tls && (await readPskDir(spec.tls.pskDir));
  const { point } = spec;
  // before the open: a garbage collection must not free a pack this process may deduplicate against
  const registration = 'read' in point ? null : await registerWriter(spec.store).catch((error: unknown) => Promise.reject(error instanceof StoreBusyError ? new StartupError(error.message) : error));
  try {
    return await serve(spec, key, tls, registration);
  } catch (error) {
    await registration?.release();
    throw error;
  }
}

async function serve(spec: ChunkNbdSpec, key: Buffer | null, tls: NbdServerTls | undefined, registration: WriterRegistration | null): Promise<{ stop: () => Promise<void> }> {
  // chunks are sealed and opened on these threads, TLS and NBD on the main one; a reader without TLS opens them on its main one (README.md)
  const workers = 'read' in spec.point && !tls ? null : new ChunkWorkers();
  const store = await ChunkStore.open(spec.store, { key, workers: workers ?? undefined }).catch((error: unknown) => Promise.reject(new StartupError(`cannot open the store ${spec.store}: ${messageOf(error)}`)));
  const { point } = spec;
  let disk: ChunkPointView | ChunkPointWriter;
  let finish = () => Promise.resolve();
  if ('read' in point) {
    disk = await store.openPoint(point.read).catch((error: unknown) => Promise.reject(new StartupError(missing(error, `the point ${point.read}`))));
  } else {
    // refused now rather than after the whole backup was written: a point is committed once and never replaced
    const taken = await store.readPoint(point.commit).then(
      () => true,
      (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? false : Promise.reject(error)),
    );
    if (taken) throw new StartupError(`the point ${point.commit} exists already`);
    const writer = await store.writePoint(point.size, point.base ?? null).catch((error: unknown) => Promise.reject(new StartupError(missing(error, `the base point ${point.base}`))));
    disk = writer;
    finish = () => writer.commit(point.commit).catch((error: unknown) => Promise.reject(new Error(`the point ${point.commit} was not committed: ${messageOf(error)}`)));
  }
  const where = 'socket' in spec.listen ? spec.listen.socket : `${spec.listen.host}:${spec.listen.port}`;
  let server: NbdServer;
  try {
    if ('socket' in spec.listen) {
      await removeLeftoverSocket(spec.listen.socket);
      server = await NbdServer.listenSocket(spec.listen.socket, disk instanceof ChunkPointWriter ? { exportName: spec.exportName, writable: true, disk } : { exportName: spec.exportName, disk });
    } else {
      const served = { exportName: spec.exportName, ...(tls ? { tls } : {}) };
      const { host, port } = spec.listen;
      server = await (disk instanceof ChunkPointWriter ? NbdServer.listenTcp(host, port, { ...served, writable: true, disk }) : NbdServer.listenTcp(host, port, { ...served, disk }));
    }
  } catch (error) {
    throw new StartupError(`cannot listen on ${where}: ${messageOf(error)}`);
  }
  if (disk instanceof ChunkPointWriter) store.prefetchIndexes();
  return {
    stop: async () => {
      try {
        await server.close();
        await finish();
        await disk.close();
      } finally {
        await workers?.close();
        await registration?.release();
      }
    },
  };
}

/** "does not exist" for a point that is not there; the store's own words (another key, damaged) for the rest. */
function missing(error: unknown, what: string): string {
  return (error as NodeJS.ErrnoException).code === 'ENOENT' ? `${what} does not exist` : `${what} cannot be opened: ${messageOf(error)}`;
}

/**
 * keys.psk as qemu's tls-creds-psk reads it (`identity:hexkey`, as RunDirFiles writes it): the one key of the export.
 * qemu's dh-params.pem, when there, is not needed: TLS 1.3 with a PSK uses ECDHE.
 */
async function readPskDir(dir: string): Promise<NbdServerTls> {
  const file = join(dir, 'keys.psk');
  const text = await fs.readFile(file, 'utf8').catch((error: unknown) => Promise.reject(new StartupError(`cannot read ${file}: ${messageOf(error)}`)));
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const [identity, key] = lines.length === 1 ? (lines[0].trim().split(':') as [string, string?]) : [];
  const psk: NbdPsk | null = identity && key && /^([0-9a-fA-F]{2})+$/.test(key) ? { identity, key } : null;
  if (!psk) throw new StartupError(`${file} must hold one line identity:hexkey`);
  return { identity: psk.identity, key: Buffer.from(psk.key, 'hex') };
}

/** A socket a killed server left at the path is removed, as qemu-nbd -k does; any other file there is not ours to remove. */
async function removeLeftoverSocket(path: string): Promise<void> {
  const stat = await fs.lstat(path).catch(() => null);
  if (stat?.isSocket()) await fs.rm(path, { force: true });
}

/** "PID\n" as qemu-nbd writes it, under its name at once (temp + rename): the launcher never reads half of it. */
async function writePidFile(pidFile: string): Promise<void> {
  const tmp = `${pidFile}.${process.pid}.tmp`;
  await fs.writeFile(tmp, `${process.pid}\n`);
  await fs.rename(tmp, pidFile);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function fail(message: string): never {
  process.stderr.write(`chunk-nbd: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
}

void main();
