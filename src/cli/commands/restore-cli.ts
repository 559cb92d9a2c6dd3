import { createWriteStream, promises as fs } from 'node:fs';
import { basename, resolve } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
// A type only: erased at compile time, so the client CLI still loads no hub code.
import type { DamagedRange } from '../../restore-points/chain.events';
import { hubToken } from '../hub-api';
import { type HubEndpoint, HubCertificateError, hubEndpoint, hubFetch } from '../../wire/hub-tls';
import { restoreDiskCommand, RESTORE_DISK_USAGE } from './disk-image-cli';
import { restoreDrillCommand, restoreVmCommand, RESTORE_VM_USAGE } from './restore-vm-cli';

export const RESTORE_USAGE = `usage:
  sendense restore mount RESTORE_POINT [--disk DISK]       mount a restore point's disk for file-level restore
  sendense restore ls MOUNT [PATH] [--volume V]            list a directory (the volume root without PATH)
  sendense restore get MOUNT PATH [--volume V] [-o FILE]   download a file (-o - writes to stdout; -o is also --output)
  sendense restore unmount MOUNT                           release the mount
  sendense restore mounts [--status S]                     list mounts (S: mounting, ready, failed or released)
${RESTORE_DISK_USAGE}
${RESTORE_VM_USAGE}

--volume may be left out when the mount has one browsable volume.
mount, ls and get say whether the restore point was verified; a corrupt one is printed in red
(when the output is a terminal, or FORCE_COLOR is set) with its damaged blocks.
The hub is SENDENSE_HUB (default http://127.0.0.1:8082); the token is SENDENSE_TOKEN, else the
admin token in $SENDENSE_DATA_DIR/admin.token (default ./var/admin.token).
`;

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  cwd: string;
}

interface Volume {
  id: string;
  fsType: string | null;
  size: number;
  label: string | null;
  status: string;
  reason: string | null;
}

interface IntegrityAnswer {
  integrity: 'verified' | 'unverified' | 'corrupt';
  verifiedAt: string | null;
  damaged: DamagedRange[];
  integrityProblems: string[];
}

interface MountAnswer extends IntegrityAnswer {
  mountId: string;
  status: string;
  restorePointId: string;
  diskId: string;
  partitionTable: string | null;
  volumes: Volume[];
  expiresAt: string | null;
  releaseReason: string | null;
}

interface Entry {
  name: string;
  type: string;
  size: number;
  mtime: string;
  mode: string;
  linkTarget?: string;
}

class UsageError extends Error {}

class HubError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Splits `--name value` / `-o value` options from positional arguments; unknown options are usage errors. */
function parseArgs(args: string[], allowed: Record<string, string>): { positional: string[]; options: Record<string, string> } {
  const positional: string[] = [];
  const options: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith('-') && arg !== '-') {
      const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
      const name = allowed[flag];
      if (!name) throw new UsageError(`unknown option ${flag}`);
      const value = inline ?? args[++i];
      if (value === undefined) throw new UsageError(`${flag} needs a value`);
      options[name] = value;
    } else {
      positional.push(arg);
    }
  }
  return { positional, options };
}

class HubClient {
  private readonly base: string;
  private readonly hub: HubEndpoint;
  private readonly token: string;

  constructor(env: NodeJS.ProcessEnv) {
    this.hub = hubEndpoint(env);
    this.base = this.hub.url.href.replace(/\/+$/, '');
    this.token = hubToken(env);
  }

  async request(method: string, path: string, body?: object): Promise<Response> {
    let res: Response;
    try {
      res = await hubFetch(this.hub, {
        method,
        path: `${this.hub.url.pathname.replace(/\/+$/, '')}${path}`,
        headers: { Authorization: `Bearer ${this.token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch (error) {
      if (error instanceof HubCertificateError) throw error;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`cannot reach the hub at ${this.base}: ${cause?.code ?? (error as NodeJS.ErrnoException).code ?? cause?.message ?? String(error)}`);
    }
    if (!res.ok) {
      const text = await res.text();
      let message = text;
      try {
        const parsed = JSON.parse(text) as { message?: string | string[] };
        if (parsed.message) message = Array.isArray(parsed.message) ? parsed.message.join('; ') : parsed.message;
      } catch {
        /* not JSON */
      }
      throw new HubError(res.status, `${res.status} ${message || res.statusText}`);
    }
    return res;
  }

  async json<T>(method: string, path: string, body?: object): Promise<T> {
    return (await (await this.request(method, path, body)).json()) as T;
  }
}

function query(params: Record<string, string | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined) search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : '';
}

function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const RED = '\x1b[31m';
const RESET = '\x1b[0m';

/** ANSI colours for a terminal, or wherever FORCE_COLOR asks for them (and never when it is 0 or false). */
function colours(stream: Writable, env: NodeJS.ProcessEnv): boolean {
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '') return force !== '0' && force !== 'false';
  return !!(stream as Writable & { isTTY?: boolean }).isTTY && env.NO_COLOR === undefined;
}

function red(lines: string[], colour: boolean): string {
  const text = lines.map((l) => `${l}\n`).join('');
  return colour ? `${RED}${text}${RESET}` : text;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** The restore point's integrity: corrupt in red with every damaged block the disk reads, the others on one plain line. */
function integrityText(m: IntegrityAnswer, colour: boolean): string {
  if (m.integrity === 'verified') return `integrity: verified${m.verifiedAt ? ` at ${m.verifiedAt}` : ''}\n`;
  if (m.integrity !== 'corrupt') return `integrity: ${m.integrity} (no verify has read this restore point back yet)\n`;
  const lines = [`integrity: CORRUPT${m.verifiedAt ? ` (verified at ${m.verifiedAt})` : ''}: ${plural(m.damaged.length, 'damaged block')} on this disk; files read from here may be wrong`];
  for (const r of m.damaged) lines.push(`  ${r.diskId} offset ${r.offset} length ${r.length} in restore point ${r.inPointId}: expected ${r.expected}, read ${r.actual}`);
  for (const problem of m.integrityProblems) lines.push(`  ${problem}`);
  return red(lines, colour);
}

/** What a download's headers say about the restore point it came from. */
function downloadIntegrityText(headers: Headers, mountId: string, colour: boolean): string | null {
  const integrity = headers.get('x-sendense-integrity');
  if (!integrity) return null;
  const verifiedAt = headers.get('x-sendense-verified-at');
  if (integrity !== 'corrupt') return integrityText({ integrity: integrity as IntegrityAnswer['integrity'], verifiedAt, damaged: [], integrityProblems: [] }, colour);
  const count = Number(headers.get('x-sendense-damaged-ranges') ?? 0);
  const holders = headers.get('x-sendense-damaged-in');
  return red([`integrity: CORRUPT: the restore point has ${plural(count, 'damaged block')} on this disk${holders ? ` (in restore point ${holders.split(',').join(', ')})` : ''}; this file may be wrong (sendense restore ls ${mountId} lists the damaged blocks)`], colour);
}

function printMount(m: MountAnswer, out: Writable, env: NodeJS.ProcessEnv): void {
  out.write(`mount ${m.mountId}: ${m.status} (restore point ${m.restorePointId}, disk ${m.diskId}${m.partitionTable ? `, ${m.partitionTable} partition table` : ''})\n`);
  out.write(integrityText(m, colours(out, env)));
  if (m.expiresAt) out.write(`released if unused until ${m.expiresAt} (every access renews it)\n`);
  if (m.releaseReason) out.write(`released: ${m.releaseReason}\n`);
  for (const v of m.volumes) {
    const label = v.label ? ` "${v.label}"` : '';
    out.write(`  ${v.id.padEnd(5)} ${(v.fsType ?? '-').padEnd(12)} ${humanSize(v.size).padStart(10)}  ${v.status}${label}${v.reason ? `: ${v.reason}` : ''}\n`);
  }
}

function mountPath(mountId: string, suffix = ''): string {
  return `/api/v1/restore/mounts/${encodeURIComponent(mountId)}${suffix}`;
}

async function mountCommand(client: HubClient, args: string[], out: Writable, env: NodeJS.ProcessEnv): Promise<number> {
  const { positional, options } = parseArgs(args, { '--disk': 'disk' });
  if (positional.length !== 1) throw new UsageError('restore mount needs exactly one RESTORE_POINT');
  const mount = await client.json<MountAnswer>('POST', '/api/v1/restore/mounts', { restorePointId: positional[0], ...(options.disk ? { diskId: options.disk } : {}) });
  printMount(mount, out, env);
  return 0;
}

/** The listing goes to stdout; the restore point's integrity to stderr, so scripts reading the listing are not disturbed. */
async function lsCommand(client: HubClient, args: string[], io: CliIo, env: NodeJS.ProcessEnv): Promise<number> {
  const out = io.stdout;
  const { positional, options } = parseArgs(args, { '--volume': 'volume' });
  if (positional.length < 1 || positional.length > 2) throw new UsageError('restore ls needs MOUNT and at most one PATH');
  const [mountId, path = ''] = positional;
  io.stderr.write(integrityText(await client.json<MountAnswer>('GET', mountPath(mountId)), colours(io.stderr, env)));
  let cursor: string | undefined;
  do {
    const page = await client.json<{ entries: Entry[]; nextCursor: string | null }>('GET', mountPath(mountId, `/files${query({ volume: options.volume, path, cursor, limit: '1000' })}`));
    for (const e of page.entries) {
      const type = e.type === 'dir' ? 'd' : e.type === 'symlink' ? 'l' : e.type === 'file' ? '-' : '?';
      out.write(`${type} ${e.mode} ${String(e.size).padStart(12)} ${e.mtime.slice(0, 19).replace('T', ' ')} ${e.name}${e.type === 'dir' ? '/' : ''}${e.linkTarget !== undefined ? ` -> ${e.linkTarget}` : ''}\n`);
    }
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return 0;
}

/** The name the hub suggests (RFC 8187 filename* first), else the last part of the path. */
function suggestedName(disposition: string | null, path: string): string {
  const star = disposition && /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  let name = star ? decodeURIComponent(star[1]) : basename(path);
  name = basename(name.replace(/\\/g, '/'));
  return name && name !== '.' && name !== '..' ? name : 'download';
}

/** The file goes where -o says (stdout with -o -); the restore point's integrity, from the download's headers, to stderr. */
async function getCommand(client: HubClient, args: string[], io: CliIo, env: NodeJS.ProcessEnv): Promise<number> {
  const { positional, options } = parseArgs(args, { '--volume': 'volume', '-o': 'output', '--output': 'output' });
  if (positional.length !== 2) throw new UsageError('restore get needs MOUNT and PATH');
  const [mountId, path] = positional;
  const res = await client.request('GET', mountPath(mountId, `/file${query({ volume: options.volume, path })}`));
  const body = res.body ? Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>) : Readable.from([]);
  const expected = Number(res.headers.get('content-length'));
  const integrity = downloadIntegrityText(res.headers, mountId, colours(io.stderr, env));
  if (integrity) io.stderr.write(integrity);
  if (options.output === '-') {
    await pipeline(body, io.stdout, { end: false });
    return 0;
  }
  const target = resolve(io.cwd, options.output ?? suggestedName(res.headers.get('content-disposition'), path));
  if (options.output === undefined && (await fs.stat(target).then(() => true, () => false))) {
    body.destroy();
    throw new Error(`${target} already exists; choose another name with -o FILE`);
  }
  // Written beside the target and renamed at the end, so an interrupted download never looks complete.
  const partial = `${target}.partial-${process.pid}`;
  try {
    await pipeline(body, createWriteStream(partial, { flags: 'wx' }));
    const written = (await fs.stat(partial)).size;
    if (Number.isFinite(expected) && written !== expected) throw new Error(`received ${written} of ${expected} bytes; the download was cut off`);
    await fs.rename(partial, target);
    io.stderr.write(`saved ${written} bytes to ${target}\n`);
    return 0;
  } catch (error) {
    await fs.rm(partial, { force: true });
    throw error;
  }
}

async function unmountCommand(client: HubClient, args: string[], out: Writable): Promise<number> {
  const { positional } = parseArgs(args, {});
  if (positional.length !== 1) throw new UsageError('restore unmount needs exactly one MOUNT');
  const mount = await client.json<MountAnswer>('DELETE', mountPath(positional[0]));
  out.write(`mount ${mount.mountId}: ${mount.status}${mount.releaseReason ? ` (${mount.releaseReason})` : ''}\n`);
  return 0;
}

async function mountsCommand(client: HubClient, args: string[], out: Writable, env: NodeJS.ProcessEnv): Promise<number> {
  const { positional, options } = parseArgs(args, { '--status': 'status' });
  if (positional.length) throw new UsageError('restore mounts takes no arguments');
  const mounts = await client.json<MountAnswer[]>('GET', `/api/v1/restore/mounts${query({ status: options.status })}`);
  const colour = colours(out, env);
  for (const m of mounts) {
    const integrity = m.integrity === 'corrupt' && colour ? `${RED}corrupt${RESET}` : m.integrity;
    out.write(`${m.mountId}  ${m.status.padEnd(8)}  ${m.restorePointId}  ${m.diskId}  ${integrity}${m.releaseReason ? `  (${m.releaseReason})` : ''}\n`);
  }
  return 0;
}

/** The `sendense restore` commands, by the word after `restore`; each gets the arguments after that word. */
export const RESTORE_COMMANDS: Record<string, (client: HubClient, args: string[], io: CliIo, env: NodeJS.ProcessEnv) => Promise<number>> = {
  mount: (c, args, io, env) => mountCommand(c, args, io.stdout, env),
  ls: (c, args, io, env) => lsCommand(c, args, io, env),
  get: (c, args, io, env) => getCommand(c, args, io, env),
  unmount: (c, args, io) => unmountCommand(c, args, io.stdout),
  mounts: (c, args, io, env) => mountsCommand(c, args, io.stdout, env),
  disk: (_c, args, io, env) => restoreDiskCommand(args, env, io),
  vm: (_c, args, io, env) => restoreVmCommand(args, env, io),
  drill: (_c, args, io, env) => restoreDrillCommand(args, env, io),
};

/**
 * `sendense restore ...`: file-level restore from the command line. Returns
 * the exit code: 0 done, 1 the hub refused or failed (its message is
 * printed), 2 a usage error.
 */
export async function restoreCommand(args: string[], env: NodeJS.ProcessEnv, io: CliIo = { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() }): Promise<number> {
  const [sub, ...rest] = args[0] === 'restore' ? args.slice(1) : args;
  try {
    if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
      io.stdout.write(RESTORE_USAGE);
      return sub === undefined ? 2 : 0;
    }
    if (!Object.hasOwn(RESTORE_COMMANDS, sub)) throw new UsageError(`unknown restore command ${JSON.stringify(sub)}`);
    return await RESTORE_COMMANDS[sub](new HubClient(env), rest, io, env);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`sendense restore: ${error.message}\n\n${RESTORE_USAGE}`);
      return 2;
    }
    io.stderr.write(`sendense restore: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
