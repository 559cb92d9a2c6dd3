import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AuditEvent } from '../../src/audit/audit-event';
import { virsh } from '../fixtures/libvirt/libvirt-guest';
import { LibvirtHost } from '../support/libvirt-host';
import { LibvirtLab } from '../support/libvirt-lab';
import { clusterBytes, MiB, sameContent, Write, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab } from '../support/backup-lab';

/**
 * Per disk: a target image served by its own qemu-nbd on a leased port. Its QemuNbdStarted comes once it serves,
 * while the agent takes its snapshot: anywhere between its request and its exit (see servedInTurn).
 */
const EXPORT_STARTED = ['NbdPortAllocated', 'QemuNbdStartRequested'];
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

/** Each export's QemuNbdStarted, once per lease, after its start was requested and before it exited; the story without them. */
function servedInTurn(story: AuditEvent[]): AuditEvent[] {
  const leases = new Set(story.filter((e) => e.type === 'QemuNbdStartRequested').map((e) => e.data.leaseId as string));
  for (const lease of leases) {
    const at = (type: string) => story.findIndex((e) => e.type === type && e.data.leaseId === lease);
    expect(story.filter((e) => e.type === 'QemuNbdStarted' && e.data.leaseId === lease)).toHaveLength(1);
    expect([at('QemuNbdStartRequested') < at('QemuNbdStarted'), at('QemuNbdStarted') < at('QemuNbdExited')]).toEqual([true, true]);
  }
  return story.filter((e) => e.type !== 'QemuNbdStarted');
}

/** The story's types, progress runs counted once per disk, with the disks' interleaved events put disk after disk. */
function types(story: AuditEvent[]): string[] {
  story = servedInTurn(story);
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
function strayCauses(story: AuditEvent[], personsAct: (e: AuditEvent) => boolean = () => false): string[] {
  const request = story[0]?.metadata.commandId;
  return story.flatMap((e, i) => {
    const earlier = new Set(story.slice(0, i).map((x) => x.eventId));
    const opensTheStory = e.metadata.commandId === request && e.metadata.causationId === request;
    const ownCause = personsAct(e) && e.metadata.causationId === e.metadata.commandId;
    return earlier.has(e.metadata.causationId) || opensTheStory || ownCause ? [] : [`#${i} ${e.type} (${e.streamId}) caused by ${e.metadata.causationId}`];
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

  it("the audit's search by VM finds exactly the events whose data names it, each job's request and point among them; by job, the job's story", async () => {
    const ids = (events: AuditEvent[]) => events.map((e) => e.eventId);
    const search = async (q: string): Promise<AuditEvent[]> => {
      const events: AuditEvent[] = [];
      for (let after = ''; ; ) {
        const page = await lab.api('GET', `/api/v1/audit/events?limit=1000${q && `&${q}`}${after}`);
        expect({ q, status: page.status }).toEqual({ q, status: 200 });
        events.push(...page.body.events);
        if (!page.body.next) return events;
        after = `&after=${page.body.next}`;
      }
    };
    const everything = await search('');
    const byVm = await search('vmId=vm1');
    // the hub may record more between the two reads: compared up to the last event of the first
    const upTo = everything.at(-1)!.position;
    expect(ids(byVm.filter((e) => e.position <= upTo))).toEqual(ids(everything.filter((e) => e.data.vmId === 'vm1')));
    const requests = byVm.filter((e) => e.type === 'BackupRequested');
    expect(requests.map((e) => e.metadata.correlationId)).toEqual(['audit-full-1', 'audit-incremental-1']);
    for (const request of requests) {
      const { jobId } = request.data as { jobId: string };
      const job = await lab.job(jobId);
      // the job's end (BackupCompleted) names its job only; the point it made names the VM
      expect(byVm.filter((e) => e.type === 'RestorePointAdded' && e.data.backupId === jobId).map((e) => e.data.restorePointId)).toEqual([job.restorePointId]);
      expect(ids(await search(`jobId=${jobId}`))).toEqual(ids(await lab.story(request.metadata.correlationId)));
      expect((await search(`jobId=${jobId}&type=BackupCompleted`)).map((e) => e.data)).toEqual([expect.objectContaining({ jobId, restorePointId: job.restorePointId })]);
      expect((await search(`jobId=${jobId}&vmId=vm1`)).map((e) => e.type)).toEqual(['BackupJobClaimed', 'BackupRequested', 'RestorePointAdded', 'BackupJobReleased']);
    }
    expect(await search('vmId=no-such-vm')).toEqual([]);
    expect(await search(`jobId=${randomUUID()}`)).toEqual([]);
    for (const q of ['vmId=..%2Fetc', `vmId=${'a'.repeat(129)}`, 'vmId=vm1%27%20OR%20%271%27%3D%271', 'vmId=', 'jobId=not-a-job', `jobId=${randomUUID()}%27`, 'vmId=vm1&vmId=vm2']) {
      expect({ q, status: (await lab.api('GET', `/api/v1/audit/events?${q}`)).status }).toEqual({ q, status: 400 });
    }
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

  it("a sync run on a second hub tells its story under the run request's correlation id, every step naming its real cause", async () => {
    // points of its own when it runs alone (-t)
    while ((await points()).length < 2) await lab.waitForJob(await lab.backup('auto'));
    const target = new BackupLab();
    try {
      await target.startHubOnly();
      const fingerprint = (await lab.api('GET', '/api/v1/identity')).body.ssh.hostKeyFingerprint;
      const { token } = (await lab.api('POST', '/api/v1/tokens', { name: 'audit-sync', role: 'sync' })).body;
      const remote = await target.api('POST', '/api/v1/remotes', { name: 'primary', url: `ssh://127.0.0.1:${lab.sshPort}`, token, fingerprint });
      expect(remote.status).toBe(201);
      const { syncJobId } = (await target.api('POST', '/api/v1/sync-jobs', { remoteId: remote.body.remoteId, repositoryId: target.repositoryId, retention: { keepLast: 1 } })).body;
      const started = await target.api('POST', `/api/v1/sync-jobs/${syncJobId}/run`, undefined, { 'X-Correlation-Id': 'audit-sync-1' });
      expect(started.status).toBe(202);
      let run: { status: string; synced: string[] } | undefined;
      await target.until(async () => (run = (await target.api('GET', `/api/v1/sync-jobs/${syncJobId}`)).body.lastRun)?.status !== 'running', 120_000, 'the sync run to end');
      expect(run).toMatchObject({ status: 'completed', synced: await points() });
      const story = await target.story('audit-sync-1');
      const typesOf = [...new Set(story.map((e) => e.type))];
      expect(typesOf).toEqual(expect.arrayContaining(['SyncRunStarted', 'SyncPointStarted', 'RestorePointSynced', 'SyncRetentionApplied', 'SyncRunCompleted']));
      expect(story[0].type).toBe('SyncRunStarted');
      expect(story.filter((e) => e.type === 'RestorePointSynced')).toHaveLength(run!.synced.length);
      expect(story.every((e) => e.metadata.correlationId === 'audit-sync-1')).toBe(true);
      expect(strayCauses(story)).toEqual([]);
    } finally {
      await target.close();
    }
  }, 240_000);

  it("takes reports on a job only from the job's own agent or the admin, each naming the event that asked for the job", async () => {
    const [job] = (await lab.api('GET', '/api/v1/backups?vmId=vm1')).body.jobs;
    const { token } = (await lab.api('POST', '/api/v1/tokens', { name: 'operator-1' })).body;
    const asOperator = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/backups/${job.jobId}/agent-reports`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'finished' }),
    });
    expect(asOperator.status).toBe(403);
    expect((await lab.api('POST', `/api/v1/backups/${randomUUID()}/agent-reports`, { type: 'finished' })).status).toBe(404);
    const events = (await lab.events(job.jobId)) as unknown as AuditEvent[];
    const ownAsk = events.find((e) => e.type === 'SnapshotRequested')!.eventId;
    const report = (cause?: string, body: Record<string, unknown> = { type: 'finished' }) => lab.api('POST', `/api/v1/backups/${job.jobId}/agent-reports`, body, cause ? { 'X-Causation-Id': cause } : {});
    expect((await report(ownAsk, { type: 'bogus' })).status).toBe(400);
    // no cause, a malformed one, an id no event has, this job's own other events, another job's asking event
    const [other] = (await lab.api('GET', '/api/v1/backups?vmId=vm1')).body.jobs.filter((j: { jobId: string }) => j.jobId !== job.jobId);
    const othersAsk = ((await lab.events(other.jobId)) as unknown as AuditEvent[]).find((e) => e.type === 'SnapshotRequested')!.eventId;
    const refused: [string | undefined, RegExp][] = [
      [undefined, /X-Causation-Id is required/],
      ['not-an-event', /X-Causation-Id must be an event id/],
      [randomUUID(), /is not the SnapshotRequested of backup job/],
      [events.find((e) => e.type === 'BackupRequested')!.eventId, /is not the SnapshotRequested of backup job/],
      [events.find((e) => e.type === 'DiskTransferCompleted')!.eventId, /is not the SnapshotRequested of backup job/],
      [othersAsk, /is not the SnapshotRequested of backup job/],
    ];
    for (const [cause, message] of refused) {
      const res = await report(cause, { type: 'transfer-started', diskId: 'disk0', bytesPlanned: 1 });
      expect({ cause, status: res.status, message: res.body.message }).toEqual({ cause, status: 400, message: expect.stringMatching(message) });
    }
    // nothing of the refused reports was recorded
    expect(await lab.events(job.jobId)).toEqual(events);
    expect((await report(ownAsk)).status).toBe(202);
  });
});

/**
 * Restores, drills and file-restore mounts under a real libvirtd: a shut-off domain whose one disk holds an ext4
 * filesystem is backed up through the libvirt agent, then brought back whole (full and instant), drilled and
 * mounted. Each request's story carries its correlation id, every event in it names an earlier event of it as its
 * cause, and the agent's reports name exactly the RestoreStarted that asked the agent for the restore.
 */
describe('one audit story per restore, drill and mount', () => {
  const run = promisify(execFile);
  const lab = new LibvirtLab();
  const host = new LibvirtHost('sendense-audit-');
  let agentId = '';
  let pointId = '';
  const name = (tag: string) => `sendense-audit-${tag}-${process.pid}`;

  beforeAll(async () => {
    await host.open({ storage: true });
    await run('truncate', ['-s', '24M', join(host.dir, 'd.raw')]);
    await run('mkfs.ext4', ['-q', '-F', join(host.dir, 'd.raw')]);
    await run('qemu-img', ['convert', '-q', '-O', 'qcow2', join(host.dir, 'd.raw'), join(host.dir, 'd.qcow2')]);
    rmSync(join(host.dir, 'd.raw'));
    const source = name('source');
    host.domains.push(source);
    await run('sh', ['-c', `cat > ${host.dir}/d.xml <<'X'
<domain type='qemu'><name>${source}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${host.dir}/d.qcow2'/><target dev='vda' bus='virtio'/></disk><memballoon model='none'/></devices></domain>
X`]);
    await virsh('define', join(host.dir, 'd.xml'));
    lab.vmIds = [(await virsh('domuuid', source)).trim()];
    await lab.start();
    agentId = await lab.agentId();
    const job = await lab.waitForJob(await lab.backup('full', lab.vmIds[0], 'audit-libvirt-backup'), 180_000);
    expect(job).toMatchObject({ status: 'completed' });
    pointId = job.restorePointId;
  }, 400_000);

  afterAll(() => host.close(lab), 120_000);

  async function waitForRestore(restoreId: string): Promise<any> {
    let r: any;
    await lab.until(async () => (r = (await lab.api('GET', `/api/v1/restores/${restoreId}`)).body).status !== undefined && r.status !== 'running', 300_000, `restore ${restoreId} to end`);
    return r;
  }

  /** The events a restore records from its agent's reports. */
  const AGENT_REPORTS = ['RestoreDisksPlanned', 'RestoreDiskProgressed', 'RestoreDiskCompleted', 'RestoreDomainDefined', 'InstantRecoveryRunning'];

  /**
   * One restore's story: its request opens it, each of the agent's reports (at least `reports`; progress comes by
   * time) names the RestoreStarted that asked for it, nothing is uncaused or its own cause, and it ends in `end`.
   */
  async function expectRestoreStory(correlationId: string, restoreId: string, reports: string[], end: string[]): Promise<AuditEvent[]> {
    const story = await lab.story(correlationId);
    expect(story.every((e) => e.metadata.correlationId === correlationId)).toBe(true);
    expect(strayCauses(story)).toEqual([]);
    const own = story.filter((e) => e.streamId === `vm-restore-${restoreId}`);
    expect(own[0].type).toBe('RestoreRequested');
    expect(end).toContain(own.at(-1)!.type);
    const started = own.find((e) => e.type === 'RestoreStarted')!;
    const fromAgent = own.filter((e) => AGENT_REPORTS.includes(e.type));
    expect([...new Set(fromAgent.map((e) => e.type))].filter((t) => t !== 'RestoreDiskProgressed').sort()).toEqual([...reports].sort());
    for (const e of fromAgent) expect({ type: e.type, cause: e.metadata.causationId, actor: e.metadata.actor }).toEqual({ type: e.type, cause: started.eventId, actor: 'agent-lab-agent' });
    // the end follows from the agent's last recorded report (or, with none, from the start that asked for it)
    expect(own.at(-1)!.metadata.causationId).toBe((fromAgent.at(-1) ?? started).eventId);
    return story;
  }

  it('a full restore to a new domain: the agent reports what it plans, copies and defines, each caused by the RestoreStarted', async () => {
    const target = name('full');
    host.domains.push(target);
    const res = await lab.api('POST', '/api/v1/restores', { agentId, mode: 'full', restorePointId: pointId, target: { kind: 'new-domain', name: target, storageDir: host.storage, start: false } }, { 'X-Correlation-Id': 'audit-restore-full' });
    expect(res.status).toBe(202);
    expect(await waitForRestore(res.body.restoreId)).toMatchObject({ status: 'completed' });
    const story = await expectRestoreStory('audit-restore-full', res.body.restoreId, ['RestoreDisksPlanned', 'RestoreDiskCompleted', 'RestoreDomainDefined'], ['RestoreCompleted']);
    // a restore's id is a job the audit's search knows too
    const found = await lab.api('GET', `/api/v1/audit/events?jobId=${res.body.restoreId}&limit=1000`);
    expect(found.body.events.map((e: AuditEvent) => e.eventId)).toEqual(story.map((e) => e.eventId));
  }, 360_000);

  it('an instant recovery: the domain runs on the hub export, the copy ends, and every report names the RestoreStarted', async () => {
    const target = name('instant');
    host.domains.push(target);
    const res = await lab.api('POST', '/api/v1/restores', { agentId, mode: 'instant', restorePointId: pointId, target: { kind: 'new-domain', name: target, storageDir: host.storage } }, { 'X-Correlation-Id': 'audit-restore-instant' });
    expect(res.status).toBe(202);
    expect(await waitForRestore(res.body.restoreId)).toMatchObject({ status: 'completed', error: null });
    const story = await expectRestoreStory('audit-restore-instant', res.body.restoreId, ['InstantRecoveryRunning', 'RestoreDiskCompleted'], ['RestoreCompleted']);
    expect(story.map((e) => e.type)).toContain('InstantRecoveryLocal');
  }, 360_000);

  it("a drill's verdict is caused by the last thing recorded before it", async () => {
    const res = await lab.api('POST', `/api/v1/restore-points/${pointId}/drill`, { agentId, timeoutSeconds: 5 }, { 'X-Correlation-Id': 'audit-drill' });
    expect(res.status).toBe(202);
    // the domain boots nothing and has no guest agent: whichever verdict, the story is the same shape
    expect(await waitForRestore(res.body.restoreId)).toMatchObject({ drill: { passed: expect.any(Boolean) } });
    await expectRestoreStory('audit-drill', res.body.restoreId, [], ['RecoveryDrillPassed', 'RecoveryDrillFailed']);
  }, 360_000);

  it("a file-restore mount tells one story, its release by a person included as that person's own act", async () => {
    const mounted = await lab.api('POST', '/api/v1/restore/mounts', { restorePointId: pointId }, { 'X-Correlation-Id': 'audit-mount' });
    expect(mounted).toMatchObject({ status: 201, body: { status: 'ready' } });
    expect((await lab.api('DELETE', `/api/v1/restore/mounts/${mounted.body.mountId}`, undefined, { 'X-Correlation-Id': 'audit-unmount' })).status).toBe(200);
    const story = await lab.story('audit-mount');
    expect(story.map((e) => e.type)).toEqual(expect.arrayContaining(['RestoreMountRequested', 'RestoreMountReady', 'RestoreMountReleased']));
    expect(story[0].type).toBe('RestoreMountRequested');
    expect(story.every((e) => e.metadata.correlationId === 'audit-mount')).toBe(true);
    // the DELETE joins the mount's story (src/restore/commands/release-restore-mount.handler.ts) as a person's
    // command, its own cause under its actor; what follows from it names it
    const released = story.find((e) => e.type === 'RestoreMountReleased')!;
    expect(released.metadata.actor).not.toBe('system');
    expect(strayCauses(story, (e) => e === released)).toEqual([]);
  }, 180_000);

  it("takes a restore's reports only when they name its own RestoreStarted, and records nothing else", async () => {
    const [restore, other] = ((await lab.api('GET', '/api/v1/restores')).body as { restoreId: string }[]).map((r) => r.restoreId);
    const streamOf = async (id: string) => (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${id}?limit=1000`)).body.events as AuditEvent[];
    const events = await streamOf(restore);
    const startedOf = async (id: string) => (await streamOf(id)).find((e) => e.type === 'RestoreStarted')!.eventId;
    const report = (cause?: string) => lab.api('POST', `/api/v1/restores/${restore}/agent-reports`, { type: 'disk-progressed', diskId: 'vda', bytesDone: 1, bytesPlanned: 2, rate: 1 }, cause ? { 'X-Causation-Id': cause } : {});
    const refused: [string | undefined, RegExp][] = [
      [undefined, /X-Causation-Id is required/],
      ['RestoreStarted', /X-Causation-Id must be an event id/],
      [randomUUID(), /is not the RestoreStarted of restore/],
      [events[0].eventId, /is not the RestoreStarted of restore/],
      [await startedOf(other), /is not the RestoreStarted of restore/],
    ];
    for (const [cause, message] of refused) {
      const res = await report(cause);
      expect({ cause, status: res.status, message: res.body.message }).toEqual({ cause, status: 400, message: expect.stringMatching(message) });
    }
    expect(await streamOf(restore)).toEqual(events);
  });
});
