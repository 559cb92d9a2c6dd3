import { join } from 'node:path';
import { fullBackupRequest } from '../../test/fixtures/agent/start-request';
import { createImage, imagesEqual, qemuIo } from '../../test/fixtures/nbd/images';
import { nbdkitLoggedCounts, NbdServer, removeDir, startNbdkit, startQemuNbd, stopAllServers, tempDir } from '../../test/fixtures/nbd/servers';
import { reportsUntilEnd } from '../../test/support/runner-reports';
import { DEFAULT_READ_SIZE, DEFAULT_REQUEST_SIZE } from '../data-mover';
import { openNbd } from '../nbd-protocol';
import type { AgentReport } from '../wire/backup-protocol';
import { BackupRunner } from './backup-runner';
import { HubAnswerError } from './hub-client';
import type { BackupSource, SourceSnapshot } from './sources/backup-source';

/** The runner's copy between real NBD servers (nbdkit, its log filter recording each request); the source driver is faked. */

jest.setTimeout(60_000);

let dir: string;

beforeAll(() => {
  dir = tempDir('sendense-runner-int-');
});

afterAll(async () => {
  await stopAllServers();
  removeDir(dir);
});

const request = fullBackupRequest(['disk0']);

/** One full backup of the source export into the target export; the runner's reports. `known`: the target is marked as holding a point, whose digests this answers. */
async function backUp(source: NbdServer, target: NbdServer, known?: () => Promise<Buffer>, hubRefuses: (report: AgentReport) => Error | null = () => null): Promise<AgentReport[]> {
  const snapshot: SourceSnapshot = {
    snapshotId: 'snap-1',
    vmId: request.vmId,
    disks: [{ diskId: 'disk0', uri: source.uri, socketPath: source.socket!, exportName: '', format: 'raw', virtualSize: 32 << 20 }],
    close: async () => undefined,
    closed: false,
  };
  const fakeSource = {
    prepareBackup: async () => ({ vmId: request.vmId, newPointId: request.restorePointId, sincePointId: null, mode: 'full', disks: [{ diskId: 'disk0', mode: 'full' }], bitmaps: {} }),
    openSnapshot: async () => snapshot,
    completeBackup: async () => undefined,
  } as unknown as BackupSource;
  const reports = reportsUntilEnd<AgentReport>();
  const runner = new BackupRunner({
    source: fakeSource,
    connectTarget: () => openNbd(target.uri),
    report: async (job, report) => {
      const refused = hubRefuses(report);
      if (refused) throw refused;
      await reports.report(job, report);
    },
    uploadDigests: async () => undefined,
    knownDigests: known ?? (async () => Promise.reject(new Error('no target is known'))),
    uploadConfiguration: async () => undefined,
    log: () => undefined,
  });
  runner.start(known ? { ...request, disks: request.disks.map((d) => ({ ...d, known: true })) } : request);
  return reports.ended;
}

describe('BackupRunner with real NBD servers', () => {
  it('reads a disk in pieces of DEFAULT_READ_SIZE (what a qemu with glibc malloc defaults serves cheaply) and writes whole requests', async () => {
    const sourceLog = join(dir, 'src.log');
    const targetLog = join(dir, 'dst.log');
    const source = await startNbdkit(dir, ['pattern', '32M', `logfile=${sourceLog}`], ['log']);
    const target = await startNbdkit(dir, ['memory', '32M', `logfile=${targetLog}`], ['log']);
    const reports = await backUp(source, target);
    expect(reports.map((r) => r.type)).toEqual(expect.arrayContaining(['transfer-completed', 'finished']));
    expect(Math.max(...nbdkitLoggedCounts(sourceLog, 'Read'))).toBe(DEFAULT_READ_SIZE);
    expect(Math.max(...nbdkitLoggedCounts(targetLog, 'Write'))).toBe(DEFAULT_REQUEST_SIZE);
    expect((await imagesEqual(source.uri, 'raw', target.uri, 'raw')).equal).toBe(true);
    await source.stop();
    await target.stop();
  });

  it('a target marked as holding a point whose digests the hub cannot give is written whole, zeroes included: it ends equal to the source', async () => {
    const source = await startNbdkit(dir, ['sparse-random', '32M', 'seed=7', 'percent=20', 'runlength=200000']);
    // what the target started from: data everywhere, where the source has zeroes too
    const file = await createImage(join(dir, 'held.qcow2'), 'qcow2', 32 << 20);
    await qemuIo(file, 'qcow2', ['write -P 0x77 0 32M']);
    const target = await startQemuNbd({ dir, file, format: 'qcow2' });
    const reports = await backUp(source, target, async () => Promise.reject(new Error('hub answered 404')));
    const completed = reports.find((r) => r.type === 'transfer-completed') as Extract<AgentReport, { type: 'transfer-completed' }>;
    expect(completed.bytesWritten + completed.bytesZeroed).toBe(32 << 20);
    expect(completed.bytesZeroed).toBeGreaterThan(16 << 20);
    expect(completed.bytesKnown).toBeUndefined();
    await target.stop();
    expect((await imagesEqual(source.uri, 'raw', file, 'qcow2')).equal).toBe(true);
    await source.stop();
  });

  it("a last report the hub cannot take for a moment reaches it later: the job ends finished, not failed or never", async () => {
    const source = await startNbdkit(dir, ['pattern', '32M']);
    const target = await startNbdkit(dir, ['memory', '32M']);
    let refusals = 0;
    const reports = await backUp(source, target, undefined, (r) => (r.type === 'finished' && refusals++ < 2 ? new HubAnswerError(503, 'hub answered 503: the event store is not reachable') : null));
    expect({ refusals, ends: reports.filter((r) => r.type === 'finished' || r.type === 'failed').map((r) => r.type) }).toEqual({ refusals: 3, ends: ['finished'] });
    await source.stop();
    await target.stop();
  });
});
