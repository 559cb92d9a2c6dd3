import { promises as fs, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readCmdline } from './proc';

/*
 * A work area: one short-named directory per job of a hub feature (a download, a verify's or a sync's export)
 * holding its export process's socket, pid file and log, or a file being built. Short names keep socket paths under
 * the 108 bytes a Unix socket address allows. After a crash of the hub, clearWorkArea stops what was left running
 * there and removes the rest.
 */

/** A new short-named dir in `area` (made 0700 if missing). */
export async function makeWorkDir(area: string): Promise<string> {
  await fs.mkdir(area, { recursive: true, mode: 0o700 });
  return fs.mkdtemp(join(area, 'd-'));
}

export async function removeWorkDir(dir: string): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true });
}

/**
 * After a crash of the hub: its export processes (they die with a clean exit, not with a SIGKILL of the hub) and
 * the half-built files it left. Only processes whose command line names a path in the area are touched. Returns
 * what was found, for the log.
 */
export async function clearWorkArea(area: string): Promise<{ processes: number[]; entries: string[] }> {
  const processes: number[] = [];
  for (const name of safeReaddir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmdline = readCmdline(Number(name));
    if (cmdline?.some((arg) => arg.startsWith(`${area}/`) || arg.includes(`=${area}/`))) {
      try {
        process.kill(Number(name), 'SIGKILL');
        processes.push(Number(name));
      } catch {
        // gone meanwhile
      }
    }
  }
  const entries = safeReaddir(area);
  for (const entry of entries) await fs.rm(join(area, entry), { recursive: true, force: true });
  return { processes, entries };
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
