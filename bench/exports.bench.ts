import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startHub } from '../src/hub/start-hub';
import { writeManifest } from '../src/repositories/qcow2/manifest';

const run = promisify(execFile);
const COUNT = 101;
const TOKEN = 'bench-admin-token-0123456789';

function pssKiB(pid: number): number {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
}

/**
 * 101 qemu-nbd exports through the real hub API (one restore-point export of each of 101 one-disk points, requests
 * concurrent): time to lease and serve them all, and what each costs.
 */
export async function runExportsBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sendense-bench-exports-'));
  chmodSync(dir, 0o755);
  const repo = join(dir, 'repo');
  mkdirSync(repo, { recursive: true });
  const hub = await startHub({ SENDENSE_DATA_DIR: join(dir, 'var'), SENDENSE_API_PORT: '18099', SENDENSE_ADMIN_TOKEN: TOKEN, SENDENSE_NBD_PORTS: '12600-12700', SENDENSE_NBD_BIND: '127.0.0.1', SENDENSE_LOG_LEVEL: 'error', SENDENSE_SSH_PORT: '0', SENDENSE_SSH_BIND: '127.0.0.1' });
  const headers = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
  const call = async (method: string, path: string, body?: object) => {
    const res = await fetch(`${hub.url}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<any>;
  };
  try {
    await Promise.all(
      Array.from({ length: COUNT }, async (_, i) => {
        const file = `vm${i}/disk0/p${i}.qcow2`;
        mkdirSync(join(repo, `vm${i}`, 'disk0'), { recursive: true });
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(repo, file), '1G']);
        const disk = { diskId: 'disk0', file, parentFile: null, virtualSize: 1024 ** 3, fileBytes: statSync(join(repo, file)).size, changeRef: null };
        await writeManifest(repo, { schemaVersion: 1, restorePointId: `p${i}`, vmId: `vm${i}`, createdAt: new Date().toISOString(), parentId: null, type: 'full', disks: [disk] });
      }),
    );
    const { repositoryId } = await call('POST', '/api/v1/repositories', { name: 'bench', kind: 'local', path: repo });
    await call('POST', `/api/v1/repositories/${repositoryId}/rescan`);
    const t0 = process.hrtime.bigint();
    const opened = await Promise.all(Array.from({ length: COUNT }, (_, i) => call('POST', `/api/v1/restore-points/p${i}/exports`, { tls: false })));
    const started = opened.map((o: { exportId: string; disks: { port: number; exportName: string }[] }) => ({ exportId: o.exportId, port: o.disks[0].port, exportName: o.disks[0].exportName }));
    const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
    for (const e of started) await run('nbdinfo', ['--size', `nbd://127.0.0.1:${e.port}/${e.exportName}`]);
    const pids = new Map(((await call('GET', '/api/v1/nbd/processes')) as { port: number; pid: number; state: string }[]).filter((p) => p.state === 'running').map((p) => [p.port, p.pid]));
    const pss = started.map((e) => pssKiB(pids.get(e.port)!));
    const t1 = process.hrtime.bigint();
    await Promise.all(started.map((e) => call('DELETE', `/api/v1/restore-point-exports/${e.exportId}`)));
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
