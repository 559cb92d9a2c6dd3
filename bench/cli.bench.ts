import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHub } from '../src/hub/start-hub';
import { median } from './stats';

const RUNS = 30;
const TOKEN = 'bench-admin-token-0123456789';
const BIN = join(__dirname, '..', '..', 'bin', 'sendense.js');

/** Wall clock of one child process from spawn to exit, in ms; a failing command fails the bench. */
function wall(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) =>
    execFile(process.execPath, args, { env }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`node ${args.join(' ')}: ${error.message} ${stderr}`));
      else resolve(Number(process.hrtime.bigint() - start) / 1e6);
    }),
  );
}


/**
 * `sendense backup list` (against a real hub) and `sendense --help` next to `node -e 0`: runs are
 * interleaved so that load from anything else on the machine hits all three alike; medians of RUNS.
 */
export async function runCliBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sendense-bench-cli-'));
  chmodSync(dir, 0o755);
  const hub = await startHub({ SENDENSE_DATA_DIR: join(dir, 'var'), SENDENSE_API_PORT: '18098', SENDENSE_ADMIN_TOKEN: TOKEN, SENDENSE_NBD_PORTS: '12800-12810', SENDENSE_LOG_LEVEL: 'error', SENDENSE_SSH_PORT: '0', SENDENSE_SSH_BIND: '127.0.0.1' });
  const env = { PATH: process.env.PATH, SENDENSE_HUB: hub.url, SENDENSE_TOKEN: TOKEN };
  try {
    const load = loadavg()[0];
    const times = { node: [] as number[], list: [] as number[], help: [] as number[] };
    for (let i = 0; i < RUNS + 1; i++) {
      const node = await wall(['-e', '0'], env);
      const list = await wall([BIN, 'backup', 'list'], env);
      const help = await wall([BIN, '--help'], env);
      // The first round warms the page cache and the hub's first request; it is not counted.
      if (i === 0) continue;
      times.node.push(node);
      times.list.push(list);
      times.help.push(help);
    }
    const base = median(times.node);
    const line = (label: string, xs: number[]) =>
      `${label.padEnd(26)} ${median(xs).toFixed(1).padStart(7)} ms median (min ${Math.min(...xs).toFixed(1)})  ${(median(xs) / base).toFixed(2)}x node -e 0\n`;
    process.stdout.write(`runs: ${RUNS} each, interleaved; load average at start ${load.toFixed(2)}\n`);
    process.stdout.write(line('node -e 0', times.node));
    process.stdout.write(line('sendense backup list', times.list));
    process.stdout.write(line('sendense --help', times.help));
  } finally {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
