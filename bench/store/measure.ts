import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface Cost {
  wallS: number;
  cpuS: number;
}

export const zeroCost = (): Cost => ({ wallS: 0, cpuS: 0 });
export const addCost = (a: Cost, b: Cost): Cost => ({ wallS: a.wallS + b.wallS, cpuS: a.cpuS + b.cpuS });

/**
 * Runs a shell command line; its wall time, and the CPU of everything it ran as bash's `times` reports for its
 * children (user + system): the tool and whatever it started.
 */
export function shell(command: string, env: NodeJS.ProcessEnv = {}): Promise<Cost & { stdout: string }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -o pipefail; ${command}\nstatus=$?; times >&3; exit $status`], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let times = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => (times += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${command.slice(0, 200)} exited ${code}: ${stderr.slice(-2000)}`));
      // second line: the children's "XmY.YYYs XmY.YYYs" (user, system)
      const children = times.trim().split('\n')[1] ?? '';
      const cpuS = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
      resolve({ wallS: Number(process.hrtime.bigint() - started) / 1e9, cpuS, stdout });
    });
  });
}

/** Wall and CPU (this process's, user + system) of work done inside this process. */
export async function inProcess<T>(work: () => Promise<T>): Promise<{ cost: Cost; value: T }> {
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const value = await work();
  const used = process.cpuUsage(cpu);
  return { cost: { wallS: Number(process.hrtime.bigint() - started) / 1e9, cpuS: (used.user + used.system) / 1e6 }, value };
}

/** Bytes allocated on disk by a file, or by every file under a directory. */
export function allocatedBytes(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.blocks * 512;
  return readdirSync(path).reduce((sum, name) => sum + allocatedBytes(join(path, name)), 0);
}
