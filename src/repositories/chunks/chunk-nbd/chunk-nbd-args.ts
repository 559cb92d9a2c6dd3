import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, isAbsolute, join, relative } from 'node:path';

/** A committed point served read-only, or a new point written and committed under `commit` when the process is stopped. */
export type ChunkNbdPoint = { read: string } | { commit: string; size: number; base?: string };

/** One chunk-store point served over NBD by its own process (chunk-nbd.main.ts), as qemu-nbd serves an image. */
export interface ChunkNbdSpec {
  /** Absolute path of the store (it must exist: a mistyped path would otherwise become a new, empty store). */
  store: string;
  /** Absolute path of the repository key of an encrypted store: the file's bytes are the key. */
  keyFile?: string;
  point: ChunkNbdPoint;
  /**
   * TCP, where TLS is served; or a Unix socket, without TLS, in a directory only the hub may enter (a sync writes its
   * copy of a point there). A TCP host is IPv4 because readiness is read from /proc/net/tcp (see isServing).
   */
  listen: { host: string; port: number } | { socket: string };
  exportName: string;
  /** Clients switch to TLS first and prove they hold the key in pskDir/keys.psk, as with qemu-nbd's tls-creds-psk. */
  tls?: { pskDir: string };
}

/** NBD caps export names at 4096 bytes. */
const MAX_EXPORT_NAME_BYTES = 4096;

/**
 * The program: next to this file once compiled. Under ts-jest this file is the source, and the program is the same
 * file compiled by `npm run build` under dist/.
 */
export const CHUNK_NBD_MAIN = __filename.endsWith('.js') ? join(__dirname, 'chunk-nbd.main.js') : join(packageRoot(), 'dist', relative(packageRoot(), __dirname), 'chunk-nbd.main.js');

/**
 * node's own options, before the program. A writer allocates a 64 KiB buffer or more for every block it receives,
 * seals and writes; with V8's default first old-space limit (a few MiB) that traffic set off a full collection every
 * 20 MiB or so, about a fifth of the process's CPU. A larger first limit lets the young generation's collections do
 * it (docs/benchmarks.md, encryption). Only on the command line: NODE_OPTIONS refuses it.
 */
export const CHUNK_NBD_NODE_OPTIONS = ['--initial-old-space-size=128'] as const;

/** Whether a command line (without the node binary) runs the chunk store's server: its first word not node's own option. */
export function runsChunkNbd(args: readonly string[]): boolean {
  return args.find((a) => !a.startsWith('--')) === CHUNK_NBD_MAIN;
}

function packageRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

/**
 * The command line after the node binary: node's options, the program, its options. Every option is one
 * `--name=value` word, so no value can pass for another option (an export name "-r" stays a name), and the hub
 * adopts a running process by comparing argv exactly, as it does qemu-nbd's. The pid file is written once the export serves: the launcher's readiness signal.
 *
 * A writer is told which process started it (this one, `--hub-pid`): it ends without committing once that process is
 * gone, and a hub killed while node was still loading the writer's program would otherwise already be gone when the
 * writer first looks at its parent.
 */
export function buildChunkNbdArgs(spec: ChunkNbdSpec, pidFile: string): string[] {
  validateChunkNbdSpec(spec, pidFile);
  const args = [...CHUNK_NBD_NODE_OPTIONS, CHUNK_NBD_MAIN, `--store=${spec.store}`];
  if (spec.keyFile !== undefined) args.push(`--key-file=${spec.keyFile}`);
  if ('read' in spec.point) args.push(`--point=${spec.point.read}`);
  else {
    args.push(`--commit=${spec.point.commit}`, `--size=${spec.point.size}`);
    if (spec.point.base !== undefined) args.push(`--base=${spec.point.base}`);
    args.push(`--hub-pid=${process.pid}`);
  }
  if ('socket' in spec.listen) args.push(`--socket=${spec.listen.socket}`);
  else args.push(`--host=${spec.listen.host}`, `--port=${spec.listen.port}`);
  args.push(`--export-name=${spec.exportName}`);
  if (spec.tls) args.push(`--tls-psk-dir=${spec.tls.pskDir}`);
  args.push(`--pid-file=${pidFile}`);
  return args;
}

const OPTIONS = ['store', 'key-file', 'point', 'commit', 'size', 'base', 'socket', 'host', 'port', 'export-name', 'tls-psk-dir', 'pid-file', 'hub-pid'] as const;
type Option = (typeof OPTIONS)[number];

/** The process's own arguments (process.argv without node and the program), back into a spec; an error names every problem. */
export function parseChunkNbdArgs(argv: readonly string[]): { spec: ChunkNbdSpec; pidFile: string; hubPid?: number } {
  const values = new Map<Option, string>();
  const problems: string[] = [];
  for (const arg of argv) {
    const match = /^--([a-z-]+)=([\s\S]*)$/.exec(arg);
    const name = match?.[1] as Option | undefined;
    if (!match || !OPTIONS.includes(name!)) problems.push(`unknown argument ${JSON.stringify(arg)}`);
    else if (values.has(name!)) problems.push(`--${name} is given twice`);
    else values.set(name!, match[2]);
  }
  const has = (name: Option) => values.has(name);
  const get = (name: Option) => values.get(name) ?? '';
  for (const required of ['store', 'export-name', 'pid-file'] as const) if (!has(required)) problems.push(`--${required} is missing`);
  if (has('point') === has('commit')) problems.push('give either --point (read a committed point) or --commit (write a new one)');
  if (has('point') && (has('size') || has('base'))) problems.push('--size and --base are for --commit');
  if (has('commit') && !has('size')) problems.push('--commit needs --size');
  if (has('point') && has('hub-pid')) problems.push('--hub-pid is for --commit: a reader outlives its hub');
  if (has('hub-pid') && !(integer(get('hub-pid')) > 0)) problems.push(`--hub-pid ${JSON.stringify(get('hub-pid'))} must be a process id`);
  if (has('socket') === (has('host') || has('port'))) problems.push('give either --socket or --host and --port');
  if (has('host') !== has('port')) problems.push('--host and --port go together');
  if (problems.length > 0) throw new Error(`invalid chunk-nbd arguments: ${problems.join('; ')}`);

  const point: ChunkNbdPoint = has('point') ? { read: get('point') } : { commit: get('commit'), size: integer(get('size')), ...(has('base') ? { base: get('base') } : {}) };
  const spec: ChunkNbdSpec = {
    store: get('store'),
    ...(has('key-file') ? { keyFile: get('key-file') } : {}),
    point,
    listen: has('socket') ? { socket: get('socket') } : { host: get('host'), port: integer(get('port')) },
    exportName: get('export-name'),
    ...(has('tls-psk-dir') ? { tls: { pskDir: get('tls-psk-dir') } } : {}),
  };
  validateChunkNbdSpec(spec, get('pid-file'));
  return { spec, pidFile: get('pid-file'), ...(has('hub-pid') ? { hubPid: integer(get('hub-pid')) } : {}) };
}

/** A decimal integer, or NaN (which validation names) for anything else: "1e3", "0x10" and "" are no sizes. */
function integer(text: string): number {
  return /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
}

export function validateChunkNbdSpec(spec: ChunkNbdSpec, pidFile: string): void {
  const problems: string[] = [];
  const absolute = (name: string, value: unknown) => {
    if (typeof value !== 'string' || !isAbsolute(value)) problems.push(`${name} ${JSON.stringify(value)} must be an absolute path`);
  };
  absolute('store', spec.store);
  if (spec.keyFile !== undefined) absolute('key file', spec.keyFile);
  absolute('pid file', pidFile);
  const names: [string, unknown][] = [];
  if ('read' in spec.point) names.push(['point', spec.point.read]);
  else {
    names.push(['commit', spec.point.commit]);
    if (spec.point.base !== undefined) names.push(['base', spec.point.base]);
    if (!Number.isSafeInteger(spec.point.size) || spec.point.size <= 0) problems.push(`size ${JSON.stringify(spec.point.size)} must be a positive number of bytes`);
  }
  for (const [name, value] of names) if (typeof value !== 'string' || value === '') problems.push(`${name} must be a point name (vmId/pointId/diskId)`);
  if ('socket' in spec.listen) {
    absolute('socket', spec.listen.socket);
    if (spec.tls) problems.push('TLS is served over TCP only');
  } else {
    if (isIP(spec.listen.host) !== 4) problems.push(`host ${JSON.stringify(spec.listen.host)} must be an IPv4 address`);
    // without TLS anyone who reaches the port reads or writes the point: only this host may
    else if (!spec.tls && !spec.listen.host.startsWith('127.')) problems.push(`host ${spec.listen.host} without TLS: an export without TLS listens on loopback only`);
    if (!Number.isInteger(spec.listen.port) || spec.listen.port < 1 || spec.listen.port > 65535) problems.push(`port ${JSON.stringify(spec.listen.port)} is not a TCP port`);
  }
  if (typeof spec.exportName !== 'string' || Buffer.byteLength(spec.exportName) > MAX_EXPORT_NAME_BYTES) problems.push(`export name must be a string of at most ${MAX_EXPORT_NAME_BYTES} bytes`);
  if (spec.tls) absolute('TLS PSK dir', spec.tls.pskDir);
  const strings = [spec.store, spec.keyFile, pidFile, spec.exportName, spec.tls?.pskDir, 'socket' in spec.listen ? spec.listen.socket : undefined, ...names.map(([, v]) => v)];
  // argv cannot carry NUL, and /proc/PID/cmdline could no longer be compared to adopt the process
  if (strings.some((s) => typeof s === 'string' && s.includes('\0'))) problems.push('no argument may contain NUL');
  if (problems.length > 0) throw new Error(`invalid chunk-nbd arguments: ${problems.join('; ')}`);
}
