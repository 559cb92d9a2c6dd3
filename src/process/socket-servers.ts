import { readdir, readFile } from 'node:fs/promises';
import { basename } from 'node:path';

/**
 * Kills the qemu-nbd processes serving a Unix socket under `socketPrefix` (their `-k` argument), except those
 * `keep` says are still in use: what an agent killed with SIGKILL left serving, holding image locks.
 */
export async function killQemuNbdServingUnder(socketPrefix: string, keep: (socket: string) => boolean = () => false, binary = 'qemu-nbd'): Promise<number[]> {
  const killed: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let argv: string[];
    try {
      argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    } catch {
      continue;
    }
    if (basename(argv[0] ?? '') !== basename(binary)) continue;
    const socket = argv.find((a, i) => i > 0 && argv[i - 1] === '-k');
    if (!socket || !socket.startsWith(socketPrefix) || keep(socket)) continue;
    if (await killAndWait(pid)) killed.push(pid);
  }
  return killed;
}

async function killAndWait(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return false;
  }
  const began = Date.now();
  while (Date.now() - began < 5_000) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state === 'Z' || state === 'X') return true;
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}
