import { execFile } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MiB, sameContent, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab } from '../support/backup-lab';

const run = promisify(execFile);

/** An event as the audit API answers it. */
type AuditEvent = { eventId: string; type: string; data: any; metadata: { causationId?: string } };
type Point = { restorePointId: string; parentId: string | null; disks: { diskId: string; file: string }[] };

/**
 * Retention meets a point in use: the point it prunes is mounted for file-level restore, so the chain's
 * delete refuses (409) and retention keeps the point, records why, and tries again a minute later;
 * once the mount is released the retry prunes it through the chain surgery.
 */
describe('retention keeps a mounted point and prunes it on the retry after the mount is released (real hub + agent)', () => {
  const lab = new BackupLab();
  let policyId: string;

  beforeAll(async () => {
    await lab.start();
    const created = await lab.api('POST', '/api/v1/policies', {
      name: 'keep-last-2',
      vms: { ids: ['vm1'] },
      repositoryId: lab.repositoryId,
      // never due while the test runs: it requests each backup itself
      schedule: { cron: '0 0 1 1 *', timezone: 'UTC', catchUp: 'skip' },
      retention: { keepLast: 2 },
      rpoHours: 24,
      enabled: true,
    });
    if (created.status !== 201) throw new Error(`policy refused: ${created.status} ${JSON.stringify(created.body)}`);
    policyId = created.body.policyId;
  }, 120_000);

  afterAll(async () => {
    // a mount a failed assertion left behind is released before the hub stops
    const mounts = (await lab.api('GET', '/api/v1/restore/mounts?status=ready').catch(() => ({ body: [] }))).body;
    for (const m of Array.isArray(mounts) ? mounts : []) await lab.api('DELETE', `/api/v1/restore/mounts/${m.mountId}`).catch(() => undefined);
    await lab.close();
  }, 60_000);

  const retentionEvents = async () => (await lab.api('GET', `/api/v1/audit/streams/retention-${policyId}?limit=1000`)).body.events as AuditEvent[];
  const chainEvents = async () => (await lab.api('GET', `/api/v1/audit/streams/chain-vm1-${lab.repositoryId}?limit=1000`)).body.events as AuditEvent[];
  const points = async (): Promise<Point[]> => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body;

  it('defers the prune of the mounted point with the 409 reason, then prunes it on the retry; the chain and the kept points unchanged', async () => {
    // three backups, each of a different source state, kept as copies to compare the points against
    const sources = new Map<string, { diskId: string; copy: string }[]>();
    const backup = async (i: number) => {
      for (const [d, disk] of lab.vm.disks.entries()) await writeToDisk(disk.path, [{ offset: (4 + i) * MiB + d * 128 * 1024, length: 192 * 1024, pattern: 0x40 + i }]);
      const copies = lab.vm.disks.map((disk) => {
        const copy = join(lab.dir, `source-${i}-${disk.diskId}.qcow2`);
        copyFileSync(disk.path, copy);
        return { diskId: disk.diskId, copy };
      });
      const job = await lab.waitForJob(await lab.backup('auto'));
      expect(job.status).toBe('completed');
      sources.set(job.restorePointId, copies);
      await lab.until(async () => (await retentionEvents()).some((e) => e.type === 'RetentionDecided' && e.data.trigger.backupId === job.jobId), 30_000, `the retention decision after ${job.jobId}`);
      return job as { jobId: string; restorePointId: string };
    };
    const first = await backup(0);
    const second = await backup(1);
    expect((await points()).map((p) => p.restorePointId)).toEqual([first.restorePointId, second.restorePointId]);

    // the oldest point is mounted; the third backup makes keep-last 2 prune it
    const mount = await lab.api('POST', '/api/v1/restore/mounts', { restorePointId: first.restorePointId, diskId: 'disk1' });
    expect(mount).toMatchObject({ status: 201, body: { status: 'ready' } });
    const third = await backup(2);

    // the chain's own delete says why it cannot go now: the same reason retention records
    const refused = await lab.api('DELETE', `/api/v1/restore-points/${first.restorePointId}`);
    expect(refused).toMatchObject({ status: 409, body: { message: expect.stringContaining(`restore point ${first.restorePointId} or a point above it is in use`) } });
    const reason = refused.body.message;
    const afterThird = (await retentionEvents()).find((e) => e.type === 'RetentionDecided' && e.data.trigger.backupId === third.jobId)!;
    expect(afterThird.data.marks.map((m: { restorePointId: string; keptBy?: string; prunedBy?: string }) => [m.restorePointId, m.keptBy ?? `pruned:${m.prunedBy}`])).toEqual([
      [third.restorePointId, 'keep-last'],
      [second.restorePointId, 'keep-last'],
      [first.restorePointId, 'pruned:no-rule'],
    ]);
    await lab.until(async () => (await retentionEvents()).some((e) => e.type === 'RetentionPruneDeferred'), 30_000, 'the deferred prune after the third backup');
    const deferredAfterBackup = (await retentionEvents()).filter((e) => e.type === 'RetentionPruneDeferred');
    expect(deferredAfterBackup.map((e) => e.data)).toEqual([{ policyId, vmId: 'vm1', repositoryId: lab.repositoryId, restorePointId: first.restorePointId, reason }]);
    expect(deferredAfterBackup[0].metadata.causationId).toBe(afterThird.eventId);

    // asked by hand while still mounted: the same decision, the point kept again with the same reason
    const manual = await lab.api('POST', `/api/v1/policies/${policyId}/prune`);
    expect(manual.status).toBe(200);
    expect(manual.body.chains).toEqual([expect.objectContaining({ vmId: 'vm1', decided: true, pruned: [], deferred: [{ restorePointId: first.restorePointId, reason }] })]);
    expect((await points()).map((p) => p.restorePointId)).toEqual([first.restorePointId, second.restorePointId, third.restorePointId]);
    expect((await chainEvents()).filter((e) => e.type.startsWith('RestorePointDelete'))).toEqual([]);

    // released: nobody asks again, the workflow's retry prunes it
    expect((await lab.api('DELETE', `/api/v1/restore/mounts/${mount.body.mountId}`)).status).toBe(200);
    await lab.until(async () => (await chainEvents()).some((e) => e.type === 'RestorePointMerged'), 100_000, `the retry to prune ${first.restorePointId}`);
    const events = await retentionEvents();
    const retry = events.filter((e) => e.type === 'RetentionDecided' && e.data.trigger.kind === 'retry');
    expect(retry).toHaveLength(1);
    expect(retry[0].data.marks.map((m: { restorePointId: string; keptBy?: string; prunedBy?: string }) => [m.restorePointId, m.keptBy ?? `pruned:${m.prunedBy}`])).toEqual([
      [third.restorePointId, 'keep-last'],
      [second.restorePointId, 'keep-last'],
      [first.restorePointId, 'pruned:no-rule'],
    ]);
    // deferred twice (after the backup and on the manual prune), never after the release
    expect(events.filter((e) => e.type === 'RetentionPruneDeferred')).toHaveLength(2);
    // the oldest point goes by merging it into its child (the chain's surgery), caused by the retry's decision
    const deletes = (await chainEvents()).filter((e) => e.type.startsWith('RestorePointDelete') || e.type === 'RestorePointMerged');
    expect(deletes.map((e) => e.type)).toEqual(['RestorePointDeleteStarted', 'RestorePointMerged']);
    expect(deletes[0].data).toMatchObject({ restorePointId: first.restorePointId, strategy: 'merge-into-child', childId: second.restorePointId });
    expect(deletes[1].data).toMatchObject({ restorePointId: first.restorePointId, intoId: second.restorePointId });
    expect(deletes[0].metadata.causationId).toBe(retry[0].eventId);

    // the chain: the second point now the full at the bottom, the third reading through it; both as their sources were
    // the restore points' read model catches up on the merge on its own, after the chain's events
    await lab.until(async () => (await points()).length === 2, 10_000, 'the merged point to leave the list');
    const kept = await points();
    expect(kept.map((p) => [p.restorePointId, p.parentId])).toEqual([
      [second.restorePointId, null],
      [third.restorePointId, second.restorePointId],
    ]);
    for (const point of kept) {
      for (const disk of point.disks) {
        const file = join(lab.repoRoot, disk.file);
        await run('qemu-img', ['check', '-q', '-U', file]);
        const source = sources.get(point.restorePointId)!.find((s) => s.diskId === disk.diskId)!;
        expect({ point: point.restorePointId, disk: disk.diskId, same: await sameContent(file, source.copy) }).toEqual({ point: point.restorePointId, disk: disk.diskId, same: true });
      }
    }
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }, 300_000);
});
