import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startHub } from '../src/hub/start-hub';

const run = promisify(execFile);
const COUNT = 101;
const TOKEN = 'bench-admin-token-0123456789';

function pssKiB(pid: number): number {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
}

/** 101 qemu-nbd exports through the real hub API: time to lease and serve them all, and what each costs. */
export async function runExportsBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sendense-bench-exports-'));
  chmodSync(dir, 0o755);
  const repo = join(dir, 'var', 'repositories');
  mkdirSync(repo, { recursive: true });
  const hub = await startHub({ SENDENSE_DATA_DIR: join(dir, 'var'), SENDENSE_API_PORT: '18099', SENDENSE_ADMIN_TOKEN: TOKEN, SENDENSE_NBD_PORTS: '12600-12700', SENDENSE_LOG_LEVEL: 'error', SENDENSE_SSH_PORT: '0', SENDENSE_SSH_BIND: '127.0.0.1' });
  const headers = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
  try {
    await Promise.all(Array.from({ length: COUNT }, (_, i) => run('qemu-img', ['create', '-q', '-f', 'qcow2', join(repo, `d${i}.qcow2`), '1G'])));
    const t0 = process.hrtime.bigint();
    const started = await Promise.all(
      Array.from({ length: COUNT }, async (_, i) => {
        const res = await fetch(`${hub.url}/api/v1/nbd/exports`, { method: 'POST', headers, body: JSON.stringify({ jobId: 'bench', diskId: `d${i}`, file: join(repo, `d${i}.qcow2`) }) });
        if (res.status !== 201) throw new Error(`export ${i}: ${res.status} ${await res.text()}`);
        return (await res.json()) as { leaseId: string; port: number; pid: number; exportName: string };
      }),
    );
    const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
    for (const e of started) await run('nbdinfo', ['--size', `nbd://127.0.0.1:${e.port}/${e.exportName}`]);
    const pss = started.map((e) => pssKiB(e.pid));
    const t1 = process.hrtime.bigint();
    await Promise.all(started.map((e) => fetch(`${hub.url}/api/v1/nbd/exports/${e.leaseId}`, { method: 'DELETE', headers })));
    const stopMs = Number(process.hrtime.bigint() - t1) / 1e6;
    process.stdout.write(
      [
        `exports leased, started and ready: ${COUNT} in ${startMs.toFixed(0)} ms (${(startMs / COUNT).toFixed(1)} ms each, concurrent requests)`,
        `every export answered nbdinfo: yes`,
        `qemu-nbd memory (PSS): ${(pss.reduce((a, b) => a + b, 0) / COUNT / 1024).toFixed(2)} MiB per process, ${(pss.reduce((a, b) => a + b, 0) / 1024).toFixed(0)} MiB for all`,
        `stopped and released: ${COUNT} in ${stopMs.toFixed(0)} ms`,
        '',
      ].join('\n'),
    );
  } finally {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
