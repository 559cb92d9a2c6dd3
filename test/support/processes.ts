import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const SENDENSE_BIN = join(__dirname, '../../bin/sendense.js');

/**
 * A port for a server a test starts. Taken below the kernel's ephemeral range (ip_local_port_range starts at 32768),
 * from a range of its own per lane: a port the kernel hands out as an outgoing connection's source, or one the other
 * lane picked, could otherwise be taken between this check and the server's bind.
 */
const PORT_RANGES: Record<string, number> = { system: 20_000, units: 24_000 };
const PORT_RANGE_SIZE = 4_000;
let portCursor = Math.floor(Math.random() * PORT_RANGE_SIZE);

export async function freePort(): Promise<number> {
  const base = PORT_RANGES[process.env.SENDENSE_TEST_LANE ?? ''] ?? 28_000;
  for (let tries = 0; tries < PORT_RANGE_SIZE; tries++) {
    const port = base + (portCursor++ % PORT_RANGE_SIZE);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${base}-${base + PORT_RANGE_SIZE - 1}`);
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    // 0.0.0.0: a listener on any address of this port would make the server's own bind fail
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
  });
}

export interface SpawnedCli {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `sendense ...` as its own process, the way an operator would. */
export function spawnSendense(args: string[], env: NodeJS.ProcessEnv): SpawnedCli {
  // Tests never take the default SSH port 2222: any free one, on loopback. A delete removes a point's files at once
  // (no recycle bin) unless the test is about the bin: the tests of deletes and retention check their file surgery.
  const child = spawn(process.execPath, [SENDENSE_BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, SENDENSE_SSH_PORT: '0', SENDENSE_SSH_BIND: '127.0.0.1', SENDENSE_DELETE_GRACE_DAYS: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, output: () => out, exited };
}

/** `from`: the process that should answer; its exit ends the wait at once, and its output says why it did not answer. */
export async function waitForHttp(url: string, timeoutMs = 30_000, from?: SpawnedCli): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const said = () => (from ? `; its output:\n${from.output().slice(-4000)}` : '');
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      /* not listening yet */
    }
    const { exitCode, signalCode } = from?.child ?? {};
    if (exitCode != null || signalCode != null) throw new Error(`${url} did not answer: the process ended (${exitCode ?? signalCode})${said()}`);
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms${said()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Processes whose command line mentions `needle`: what a test must not leave behind. */
export function processesMentioning(needle: string): { pid: number; cmdline: string }[] {
  const { readdirSync } = require('node:fs') as typeof import('node:fs');
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'Z' && cmdline.includes(needle)) found.push({ pid: Number(entry), cmdline });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}
