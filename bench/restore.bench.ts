import { chmodSync, mkdtempSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHub } from '../src/hub/start-hub';
import { writeManifest } from '../src/repositories/qcow2/manifest';
import { BENCH_FILE_SIZE, buildBenchImage, elapsedMs, loopMountReadRates, median, runRestoreBench as runMounterBench } from './restore-mounter.bench';
import { runTool } from '../src/restore/mounting/run-tool';
import { freePort } from '../test/support/processes';

const TOKEN = 'bench-admin-token-0123456789';
const MOUNT_RUNS = 7;
const READ_RUNS = 3;

/**
 * The same figures through the real hub: POST /restore/mounts until the
 * first GET .../files answer, and the HTTP download rate of the 200 MiB
 * file (qcow2 -> the hub's NBD export -> nbdfuse -> loop -> ext4 -> HTTP, with the
 * download recorded as an event) against reading it from a loop mount of
 * a raw copy. Embedded PostgreSQL, every step an event.
 */
async function runRestoreApiBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sendense-bench-restore-api-'));
  chmodSync(dir, 0o755);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const image = await buildBenchImage(dir);
  const repo = join(dir, 'repository');
  await fs.mkdir(join(repo, 'vm-bench', 'disk0'), { recursive: true });
  const file = join(repo, 'vm-bench', 'disk0', 'rp-1.qcow2');
  await fs.rename(image.qcow2, file);
  const { stdout } = await runTool('qemu-img', ['info', '--output=json', file]);
  await writeManifest(repo, {
    schemaVersion: 1,
    restorePointId: 'rp-1',
    vmId: 'vm-bench',
    createdAt: new Date().toISOString(),
    parentId: null,
    type: 'full',
    disks: [{ diskId: 'disk0', file: 'vm-bench/disk0/rp-1.qcow2', parentFile: null, virtualSize: JSON.parse(stdout)['virtual-size'], fileBytes: (await fs.stat(file)).size, changeRef: null }],
  });
  const hub = await startHub({
    SENDENSE_DATA_DIR: join(dir, 'var'),
    SENDENSE_API_PORT: String(await freePort()),
    SENDENSE_ADMIN_TOKEN: TOKEN,
    SENDENSE_LOG_LEVEL: 'error',
    SENDENSE_SSH_PORT: '0',
    SENDENSE_SSH_BIND: '127.0.0.1',
  });
  const headers = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
  const call = async (method: string, path: string, body?: object) => {
    const res = await fetch(`${hub.url}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res;
  };
  try {
    const { repositoryId } = (await (await call('POST', '/api/v1/repositories', { name: 'bench', kind: 'local', path: repo })).json()) as { repositoryId: string };
    await call('POST', `/api/v1/repositories/${repositoryId}/rescan`);

    const toListing: number[] = [];
    const unmounts: number[] = [];
    for (let run = 0; run < MOUNT_RUNS; run++) {
      const start = process.hrtime.bigint();
      const { mountId } = (await (await call('POST', '/api/v1/restore/mounts', { restorePointId: 'rp-1' })).json()) as { mountId: string };
      await (await call('GET', `/api/v1/restore/mounts/${mountId}/files`)).json();
      toListing.push(elapsedMs(start));
      const unmountStart = process.hrtime.bigint();
      await call('DELETE', `/api/v1/restore/mounts/${mountId}`);
      unmounts.push(elapsedMs(unmountStart));
    }
    out(`API: POST mount -> first GET files answer: median ${median(toListing).toFixed(0)} ms (min ${Math.min(...toListing).toFixed(0)}, max ${Math.max(...toListing).toFixed(0)}, ${MOUNT_RUNS} runs)`);
    out(`API: DELETE mount (everything torn down, event recorded): median ${median(unmounts).toFixed(0)} ms`);

    const viaApi: number[] = [];
    for (let run = 0; run < READ_RUNS; run++) {
      const { mountId } = (await (await call('POST', '/api/v1/restore/mounts', { restorePointId: 'rp-1' })).json()) as { mountId: string };
      try {
        // curl as the client, in its own process like a user's, so the hub does not share its thread with the reader.
        const { stdout: curlOut } = await runTool('curl', ['-sS', '-f', '-o', '/dev/null', '-H', `Authorization: Bearer ${TOKEN}`, '-w', '%{size_download} %{time_total}', `${hub.url}/api/v1/restore/mounts/${mountId}/file?path=big.bin`], { timeoutMs: 120_000 });
        const [bytes, seconds] = curlOut.trim().split(' ').map(Number);
        if (bytes !== BENCH_FILE_SIZE) throw new Error(`downloaded ${bytes} bytes, expected ${BENCH_FILE_SIZE}`);
        viaApi.push(bytes / (1024 * 1024) / seconds);
      } finally {
        await call('DELETE', `/api/v1/restore/mounts/${mountId}`);
      }
    }

    const viaLoop = await loopMountReadRates(image, dir);
    const apiRate = median(viaApi);
    const loopRate = median(viaLoop);
    out(`API: download ${BENCH_FILE_SIZE / (1024 * 1024)} MiB over HTTP (GET .../file, curl):      median ${apiRate.toFixed(0)} MiB/s (${viaApi.map((r) => r.toFixed(0)).join(', ')})`);
    out(`read ${BENCH_FILE_SIZE / (1024 * 1024)} MiB via loop mount of the raw copy:                 median ${loopRate.toFixed(0)} MiB/s (${viaLoop.map((r) => r.toFixed(0)).join(', ')})`);
    out(`ratio HTTP download / raw loop mount: ${(apiRate / loopRate).toFixed(2)}`);
  } finally {
    await hub.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** `npm run bench -- restore`: the mount stack on its own, then the same through the hub's REST API. */
export async function runRestoreBench(): Promise<void> {
  process.stdout.write('-- restore mounts without the hub (RestorePointMounter) --\n');
  await runMounterBench();
  process.stdout.write('-- through the hub REST API --\n');
  await runRestoreApiBench();
}
