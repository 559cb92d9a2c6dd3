import { randomUUID } from 'node:crypto';
import type { AuditEvent } from '../../src/audit/audit-event';
import { join } from 'node:path';
import { clusterBytes, MiB, sameContent, Write, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab } from '../support/backup-lab';

/** Per disk: a target image served by its own qemu-nbd on a leased port. */
const EXPORT_STARTED = ['NbdPortAllocated', 'QemuNbdStartRequested', 'QemuNbdStarted'];
/** Per disk, as the agent reports it; progress is throttled by time, so a run of progress reports counts as one. */
const DISK_TRANSFERRED = ['DiskTransferStarted', 'DiskTransferProgressed', 'DiskTransferCompleted'];
/** Per disk: the export stopped (flushing the image), then its port released. */
const EXPORT_STOPPED = ['QemuNbdExited', 'QemuNbdStopped', 'NbdPortReleased'];

/** The whole story of one backup of a two-disk VM, whatever its type. */
const BACKUP_STORY = [
  'BackupJobClaimed',
  'BackupRequested',
  'BackupStarted',
  'BackupTypeDecided',
  ...EXPORT_STARTED,
  ...EXPORT_STARTED,
  'BackupTargetsPrepared',
  'SnapshotRequested',
  'SnapshotCreated',
  // the two disks are copied at once: their reports interleave (see inOrderPerDisk)
  ...DISK_TRANSFERRED,
  ...DISK_TRANSFERRED,
  'SnapshotRemoved',
  ...EXPORT_STOPPED,
  ...EXPORT_STOPPED,
  'BackupTargetsReleased',
  'RestorePointAdded',
  'BackupCompleted',
  'BackupJobReleased',
];

/**
 * Events that interleave between disks put disk after disk, each disk's own in their order: the disks' transfer
 * reports (copied at once) by disk, and their exports' events (started at once, stopped at once) by lease.
 */
function perDisk(story: AuditEvent[], picks: (e: AuditEvent) => boolean, key: (e: AuditEvent) => string): AuditEvent[] {
  const picked = story.filter(picks);
  const keys = [...new Set(picked.map(key))];
  const grouped = keys.flatMap((k) => picked.filter((e) => key(e) === k));
  let i = 0;
  return story.map((e) => (picks(e) ? grouped[i++] : e));
}

/** The story's types, progress runs counted once per disk, with the disks' interleaved events put disk after disk. */
function types(story: AuditEvent[]): string[] {
  const exportEvent = (e: AuditEvent) => typeof e.data.leaseId === 'string' && [...EXPORT_STARTED, ...EXPORT_STOPPED].includes(e.type);
  const isStart = (e: AuditEvent) => EXPORT_STARTED.includes(e.type);
  let ordered = perDisk(story, (e) => e.type.startsWith('DiskTransfer'), (e) => e.data.diskId as string);
  ordered = perDisk(ordered, (e) => exportEvent(e) && isStart(e), (e) => e.data.leaseId as string);
  ordered = perDisk(ordered, (e) => exportEvent(e) && !isStart(e), (e) => e.data.leaseId as string);
  return ordered.map((e) => e.type).filter((t, i, all) => t !== 'DiskTransferProgressed' || all[i - 1] !== t);
}

/**
 * Every cause named in the story is an earlier event of it. Only the request that opened the story is its own
 * cause: every later step, the agent's reports included, names the event it reacted to.
 */
function strayCauses(story: AuditEvent[]): string[] {
  const request = story[0]?.metadata.commandId;
  return story.flatMap((e, i) => {
    const earlier = new Set(story.slice(0, i).map((x) => x.eventId));
    const opensTheStory = e.metadata.commandId === request && e.metadata.causationId === request;
    return earlier.has(e.metadata.causationId) || opensTheStory ? [] : [`#${i} ${e.type} (${e.streamId}) caused by ${e.metadata.causationId}`];
  });
}

describe('one audit story per backup job', () => {
  const lab = new BackupLab();
  beforeAll(async () => lab.start(), 120_000);
  afterAll(async () => lab.close(), 60_000);

  const points = async () => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body.map((p: { restorePointId: string }) => p.restorePointId);
  const changeBothDisks = async (pattern: number, length: number) => {
    const writes: Record<string, Write[]> = { disk0: [{ offset: 2 * MiB, length, pattern }], disk1: [{ offset: 8 * MiB, length, pattern: pattern + 1 }] };
    for (const d of lab.vm.disks) await writeToDisk(d.path, writes[d.diskId]);
  };

  async function expectOneStory(correlationId: string, jobId: string, type: 'full' | 'incremental'): Promise<void> {
    expect(await lab.waitForJob(jobId)).toMatchObject({ status: 'completed', type });
    const story = await lab.story(correlationId);
    expect(types(story)).toEqual(BACKUP_STORY);
    expect(story.every((e) => e.metadata.correlationId === correlationId)).toBe(true);
    expect(strayCauses(story)).toEqual([]);
    // The job's own stream is all in the story: nothing the job recorded fell out of it.
    expect(story.filter((e) => e.streamId === `backup-job-${jobId}`).map((e) => e.eventId)).toEqual((await lab.events(jobId)).map((e) => (e as unknown as AuditEvent).eventId));
    // The agent's reports came back under the job's correlation id, as the agent's own token.
    expect(new Set(story.filter((e) => e.type.startsWith('DiskTransfer') || e.type.startsWith('Snapshot') && e.type !== 'SnapshotRequested').map((e) => e.metadata.actor))).toEqual(new Set(['agent-lab-agent']));
  }

  it('a full and an incremental backup each tell their whole story, in order, under the correlation id of their request', async () => {
    await expectOneStory('audit-full-1', await lab.backup('auto', 'vm1', 'audit-full-1'), 'full');
    await changeBothDisks(0xc1, 1 * MiB);
    await expectOneStory('audit-incremental-1', await lab.backup('auto', 'vm1', 'audit-incremental-1'), 'incremental');
  });

  it('a restore point that a running incremental reads through cannot be deleted (409), and the backup completes', async () => {
    const [full, newest] = await points();
    expect(newest).toBeDefined();
    await changeBothDisks(0xd1, 48 * MiB);
    const jobId = await lab.backup('incremental');
    await lab.until(async () => ['snapshot', 'transferring'].includes((await lab.job(jobId)).phase), 30_000, `job ${jobId} to write its targets`);
    // Hold the agent so the job stays in flight while the deletes are tried.
    lab.agent!.child.kill('SIGSTOP');
    let refusals: { status: number; body: { message: string } }[];
    try {
      refusals = [await lab.api('DELETE', `/api/v1/restore-points/${newest}`), await lab.api('DELETE', `/api/v1/restore-points/${full}`)];
    } finally {
      lab.agent!.child.kill('SIGCONT');
    }
    expect(refusals.map((r) => r.status)).toEqual([409, 409]);
    for (const r of refusals) expect(r.body.message).toContain(`running backup job ${jobId}`);
    const job = await lab.waitForJob(jobId);
    expect(job).toMatchObject({ status: 'completed', type: 'incremental' });
    expect(await points()).toEqual([full, newest, job.restorePointId]);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    // Nothing was recorded by the refused deletes; the chain is not busy.
    const chainEvents = (await lab.api('GET', `/api/v1/audit/streams/chain-vm1-${lab.repositoryId}?limit=1000`)).body.events.map((e: { type: string }) => e.type);
    expect(chainEvents).toEqual(['RestorePointAdded', 'RestorePointAdded', 'RestorePointAdded']);
    await expectBitExact(job.restorePointId);

    // The next backup is an incremental on it that moves exactly the clusters written since.
    const writes: Record<string, Write[]> = { disk0: [{ offset: 9 * MiB + 17, length: 100_000, pattern: 0xe1 }], disk1: [{ offset: 33 * MiB, length: 2 * MiB, pattern: 0xe2 }] };
    for (const d of lab.vm.disks) await writeToDisk(d.path, writes[d.diskId]);
    const nextId = await lab.backup('auto');
    const next = await lab.waitForJob(nextId);
    expect(next).toMatchObject({ status: 'completed', type: 'incremental' });
    expect((await lab.api('GET', `/api/v1/restore-points/${next.restorePointId}`)).body.parentId).toBe(job.restorePointId);
    for (const e of (await lab.events(nextId)).filter((x) => x.type === 'DiskTransferCompleted')) expect(e.data.bytesWritten + e.data.bytesZeroed).toBe(clusterBytes(writes[e.data.diskId]));
    await expectBitExact(next.restorePointId);
  });

  async function expectBitExact(restorePointId: string): Promise<void> {
    const point = (await lab.api('GET', `/api/v1/restore-points/${restorePointId}`)).body;
    for (const d of lab.vm.disks) expect(await sameContent(d.path, join(lab.repoRoot, point.disks.find((x: { diskId: string }) => x.diskId === d.diskId).file))).toBe(true);
  }

  it("takes reports on a job only from the job's own agent or the admin", async () => {
    const [job] = (await lab.api('GET', '/api/v1/backups?vmId=vm1')).body.jobs;
    const { token } = (await lab.api('POST', '/api/v1/tokens', { name: 'operator-1' })).body;
    const asOperator = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/backups/${job.jobId}/agent-reports`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'finished' }),
    });
    expect(asOperator.status).toBe(403);
    expect((await lab.api('POST', `/api/v1/backups/${randomUUID()}/agent-reports`, { type: 'finished' })).status).toBe(404);
    expect((await lab.api('POST', `/api/v1/backups/${job.jobId}/agent-reports`, { type: 'bogus' })).status).toBe(400);
    const badCause = await lab.api('POST', `/api/v1/backups/${job.jobId}/agent-reports`, { type: 'finished' }, { 'X-Causation-Id': 'not-an-event' });
    expect(badCause).toMatchObject({ status: 400, body: { message: expect.stringMatching(/X-Causation-Id must be an event id/) } });
    expect((await lab.api('POST', `/api/v1/backups/${job.jobId}/agent-reports`, { type: 'finished' })).status).toBe(202);
  });
});
