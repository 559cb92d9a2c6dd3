import { constants } from 'node:os';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** What /proc/PID/stat says about a process; undefined from readProcStat once the pid is gone. */
export interface ProcStat {
  state: string;
  /** Clock ticks after boot; with the pid it identifies one process even if the pid is reused later. */
  startTime: string;
  /** waitpid(2)-style status, meaningful only once the process is a zombie. */
  exitStatus: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why the program could not be started at all (ENOENT, EACCES...). */
  spawnError?: string;
}

const TCP_LISTEN = '0A';

export function readProcStat(pid: number): ProcStat | undefined {
  const text = readProcFile(`/proc/${pid}/stat`);
  return text === undefined ? undefined : parseProcStat(text);
}

/** The command name may contain spaces and parentheses, so fields are counted from the last ')'. */
export function parseProcStat(text: string): ProcStat {
  const fields = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  // fields[0] is stat field 3 (state); field 22 is starttime, field 52 exit_code.
  return { state: fields[0], startTime: fields[19], exitStatus: Number(fields[49] ?? 0) };
}

/** Zombies ('Z') and dead tasks ('X') have closed every fd: image lock and port are released. */
export function isRunningState(state: string): boolean {
  return state !== 'Z' && state !== 'X';
}

export function readCmdline(pid: number): string[] | undefined {
  const text = readProcFile(`/proc/${pid}/cmdline`);
  if (text === undefined) return undefined;
  const argv = text.split('\0');
  if (argv[argv.length - 1] === '') argv.pop();
  return argv;
}

/** Live processes with `argument` as one of their command line's words (or, given a predicate, a word it accepts): what a killed process left running. */
export function processesWithArgument(argument: string | ((word: string) => boolean)): { pid: number; startTime: string }[] {
  const matches = typeof argument === 'string' ? (word: string) => word === argument : argument;
  const found: { pid: number; startTime: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid || !readCmdline(pid)?.some(matches)) continue;
    const stat = readProcStat(pid);
    if (stat && isRunningState(stat.state)) found.push({ pid, startTime: stat.startTime });
  }
  return found;
}

export function decodeWaitStatus(status: number): ExitStatus {
  const signo = status & 0x7f;
  if (signo === 0) return { code: (status >> 8) & 0xff, signal: null };
  return { code: null, signal: signalName(signo) };
}

function signalName(signo: number): NodeJS.Signals {
  const entry = Object.entries(constants.signals).find(([, n]) => n === signo);
  return (entry ? entry[0] : `SIG${signo}`) as NodeJS.Signals;
}

/** Socket inodes in LISTEN state on the given local TCP port (IPv4 table, which is where -b 127.0.0.1 lands). */
export function parseListeningInodes(procNetTcp: string, port: number): Set<string> {
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const line of procNetTcp.split('\n').slice(1)) {
    // a busy hub's table holds thousands of connections: only lines naming the port are split
    if (!line.includes(`:${portHex} `)) continue;
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const [, local, , state] = cols;
    if (state === TCP_LISTEN && local.endsWith(`:${portHex}`)) inodes.add(cols[9]);
  }
  return inodes;
}

/** Inodes of listening Unix sockets bound to the path (/proc/net/unix: Flags 00010000 is __SO_ACCEPTCON). */
export function parseListeningUnixInodes(procNetUnix: string, path: string): Set<string> {
  const inodes = new Set<string>();
  for (const line of procNetUnix.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 8) continue;
    if (cols[3] === '00010000' && cols.slice(7).join(' ') === path) inodes.add(cols[6]);
  }
  return inodes;
}

/**
 * True when the listening TCP socket on the port belongs to this pid: a LISTEN
 * entry alone could be someone else's server on a port we failed to bind.
 */
export async function isListeningOn(pid: number, port: number): Promise<boolean> {
  const table = await readProcFileAsync('/proc/net/tcp');
  return table !== undefined && holdsSocket(pid, parseListeningInodes(table, port));
}

/** The same for a Unix socket: the path existing proves nothing, a leftover file or another server may sit there. */
export async function isListeningOnUnixSocket(pid: number, path: string): Promise<boolean> {
  const table = await readProcFileAsync('/proc/net/unix');
  return table !== undefined && holdsSocket(pid, parseListeningUnixInodes(table, path));
}

function holdsSocket(pid: number, inodes: Set<string>): boolean {
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // fd closed while we were looking
    }
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match && inodes.has(match[1])) return true;
  }
  return false;
}

/**
 * The socket tables: the kernel walks its whole connection hash to print one, some milliseconds on a large machine
 * with a busy hub, which the launcher's readiness check now spends on libuv's threads instead of the event loop.
 */
function readProcFileAsync(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch(gone);
}

function readProcFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    return gone(error);
  }
}

/** A /proc file that vanished with its process reads as undefined; any other error stands. */
function gone(error: unknown): undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ESRCH') return undefined;
  throw error;
}
