import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { clusterBytes, sameContent, Write, writeToDisk, MiB } from '../fixtures/vm/sample-vm';
import { BackupLab } from '../support/backup-lab';

const run = promisify(execFile);

/** The capability the earlier attempt never reached: a real backup of a multi-disk VM, end to end. */
describe('backups end to end: hub and agent processes, SSH tunnel, real qcow2 disks with ext4', () => {
  const lab = new BackupLab();
  beforeAll(async () => lab.start(), 120_000);
  afterAll(async () => lab.close(), 60_000);

  const chainFile = (file: string) => join(lab.repoRoot, file);

  it('a full then an incremental backup: each restore point equals the disks at snapshot time, the incremental writes exactly the changed clusters', async () => {
    const fullId = await lab.backup('auto');
    const full = await lab.waitForJob(fullId);
    expect(full).toMatchObject({ status: 'completed', type: 'full', typeReason: 'no restore point in this chain yet' });
    const fullEvents = await lab.events(fullId);
    const snapshots = fullEvents.filter((e) => e.type === 'SnapshotCreated');
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0].data.diskIds.sort()).toEqual(['disk0', 'disk1']);
    const rp1 = (await lab.api('GET', `/api/v1/restore-points/${full.restorePointId}`)).body;
    // powered-off images: the source cannot tell how consistent the guest was
    expect({ consistency: rp1.consistency, consistencyReason: rp1.consistencyReason, freezeMs: rp1.freezeMs }).toEqual({ consistency: null, consistencyReason: null, freezeMs: null });
    for (const d of lab.vm.disks) expect(await sameContent(d.path, chainFile(rp1.disks.find((x: { diskId: string }) => x.diskId === d.diskId).file))).toBe(true);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });

    const writes: Record<string, Write[]> = {
      disk0: [{ offset: 1 * MiB + 100, length: 5000, pattern: 0xa1 }, { offset: 20 * MiB, length: 3 * MiB, pattern: 0xa2 }, { offset: 40 * MiB, length: 256 * 1024, zero: true }],
      disk1: [{ offset: 0, length: 4096, pattern: 0xb1 }, { offset: 70 * MiB + 3, length: 200_000, pattern: 0xb2 }],
    };
    for (const d of lab.vm.disks) await writeToDisk(d.path, writes[d.diskId]);

    const incId = await lab.backup('auto');
    const inc = await lab.waitForJob(incId);
    expect(inc).toMatchObject({ status: 'completed', type: 'incremental' });
    const rp2 = (await lab.api('GET', `/api/v1/restore-points/${inc.restorePointId}`)).body;
    expect(rp2).toMatchObject({ type: 'incremental', parentId: full.restorePointId });
    for (const d of lab.vm.disks) expect(await sameContent(d.path, chainFile(rp2.disks.find((x: { diskId: string }) => x.diskId === d.diskId).file))).toBe(true);
    const completed = (await lab.events(incId)).filter((e) => e.type === 'DiskTransferCompleted');
    for (const e of completed) expect(e.data.bytesWritten + e.data.bytesZeroed).toBe(clusterBytes(writes[e.data.diskId]));
    expect((await lab.events(incId)).filter((e) => e.type === 'SnapshotCreated')).toHaveLength(1);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });

    // the space of the repository's points (the console's overview): their disks' files as recorded, each file's size
    // on disk, and the newest sample of its history; its own read model, caught up on its own
    const disks: { file: string; fileBytes: number }[] = (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body.flatMap((p: { disks: unknown[] }) => p.disks);
    const recorded = disks.reduce((n, d) => n + d.fileBytes, 0);
    expect(disks.reduce((n, d) => n + statSync(chainFile(d.file)).size, 0)).toBe(recorded);
    await lab.until(async () => (await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}/usage`)).body.samples?.at(-1)?.usedBytes === recorded, 10_000, 'the usage read model to apply the incremental');
    const usage = (await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}/usage`)).body;
    expect(usage).toMatchObject({ repositoryId: lab.repositoryId, pointsBytes: recorded, growthBytesPerDay: null, estimatedFullAt: null });
    expect(usage.freeBytes).toBeGreaterThan(0);
    expect((await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}`)).body.pointsBytes).toBe(recorded);

    const sse = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/backups/${incId}/events`, { headers: { Authorization: 'Bearer lab-admin-token-0123456789' } });
    expect(sse.headers.get('content-type')).toBe('text/event-stream');
    const stream = await sse.text();
    expect(stream.match(/^event: (\w+)$/gm)!.map((l) => l.slice(7))).toEqual((await lab.events(incId)).map((e) => e.type));
    expect(stream).toContain('event: BackupCompleted');

    const list = (await lab.api('GET', `/api/v1/backups?vmId=vm1`)).body.jobs;
    expect(list.map((j: { jobId: string }) => j.jobId)).toEqual([incId, fullId]);
    const report = (await lab.api('GET', `/api/v1/reports/jobs?from=2000-01-01&to=2100-01-01`)).body;
    expect(report.vms).toEqual([expect.objectContaining({ vmId: 'vm1', successes: 2, failures: 0 })]);
    // per day, in the zone asked for (the console's job chart): both jobs ended today
    const today = (zone: string) => new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(new Date());
    expect(report.days).toEqual([{ day: today('UTC'), successes: 2, failures: 0 }]);
    const tokyo = (await lab.api('GET', `/api/v1/reports/jobs?from=2000-01-01&to=2100-01-01&timezone=Asia/Tokyo`)).body;
    expect({ timezone: tokyo.timezone, days: tokyo.days }).toEqual({ timezone: 'Asia/Tokyo', days: [{ day: today('Asia/Tokyo'), successes: 2, failures: 0 }] });
    const badZone = await lab.api('GET', `/api/v1/reports/jobs?from=2000-01-01&to=2100-01-01&timezone=Mars/Olympus`);
    expect({ status: badZone.status, message: badZone.body.message }).toEqual({ status: 400, message: ['timezone must be an IANA time zone, e.g. Europe/Berlin'] });
  });

  it('refuses a second backup of a VM that is already being backed up, and bad requests', async () => {
    const first = await lab.backup('full');
    const second = await lab.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId: lab.repositoryId, type: 'auto' });
    expect(second.status).toBe(409);
    expect(second.body.message).toContain(first);
    expect((await lab.waitForJob(first)).status).toBe('completed');
    expect((await lab.api('POST', '/api/v1/backups', { vmId: 'nope', repositoryId: lab.repositoryId })).status).toBe(404);
    expect((await lab.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId: 'x' })).status).toBe(400);
    expect((await lab.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId: lab.repositoryId, type: 'differential' })).status).toBe(400);
    expect((await lab.api('GET', '/api/v1/backups/not-a-uuid')).status).toBe(400);
  });

  it('a VM with a raw disk: every backup is a full with its reason on the job, and no ChainBroken (a raw disk has no change tracking to lose)', async () => {
    const raw = join(lab.dir, 'vm', 'rawvm-disk0.img');
    writeFileSync(raw, Buffer.alloc(8 * MiB, 7));
    const inventory = JSON.parse(readFileSync(lab.vm.inventoryFile, 'utf8'));
    inventory.vms.push({ id: 'rawvm', name: 'rawvm', disks: [{ id: 'disk0', path: raw }] });
    writeFileSync(lab.vm.inventoryFile, JSON.stringify(inventory));
    await lab.stop(lab.agent);
    await lab.startAgent();
    await lab.until(async () => ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string; agentConnected: boolean }[]).some((v) => v.vmId === 'rawvm' && v.agentConnected), 30_000, 'the agent to report rawvm');
    for (const round of [1, 2]) {
      const jobId = await lab.backup('auto', 'rawvm');
      expect(await lab.waitForJob(jobId)).toMatchObject({ status: 'completed', type: 'full' });
      const decided = (await lab.events(jobId)).find((e) => e.type === 'BackupTypeDecided');
      if (round === 2) expect(decided?.data.reason).toMatch(/raw/);
    }
    const chain = (await lab.api('GET', `/api/v1/audit/streams/chain-rawvm-${lab.repositoryId}?limit=1000`)).body.events as { type: string }[];
    expect(chain.filter((e) => e.type === 'RestorePointAdded')).toHaveLength(2);
    expect(chain.filter((e) => e.type === 'ChainBroken')).toEqual([]);
  });

  it('a VM with a raw and a qcow2 disk whose bitmap was lost: the full is recorded as a broken chain, with the qcow2 disk named in the reason', async () => {
    const raw = join(lab.dir, 'vm', 'mixedvm-disk0.img');
    const qcow2 = join(lab.dir, 'vm', 'mixedvm-disk1.qcow2');
    writeFileSync(raw, Buffer.alloc(8 * MiB, 7));
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '8M']);
    const inventory = JSON.parse(readFileSync(lab.vm.inventoryFile, 'utf8'));
    inventory.vms.push({ id: 'mixedvm', name: 'mixedvm', disks: [{ id: 'disk0', path: raw }, { id: 'disk1', path: qcow2 }] });
    writeFileSync(lab.vm.inventoryFile, JSON.stringify(inventory));
    await lab.stop(lab.agent);
    await lab.startAgent();
    await lab.until(async () => ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string; agentConnected: boolean }[]).some((v) => v.vmId === 'mixedvm' && v.agentConnected), 30_000, 'the agent to report mixedvm');
    const first = await lab.waitForJob(await lab.backup('auto', 'mixedvm'));
    expect(first).toMatchObject({ status: 'completed', type: 'full' });
    await run('qemu-img', ['bitmap', '--remove', qcow2, `sendense-${first.restorePointId}`]);

    const jobId = await lab.backup('auto', 'mixedvm');
    expect(await lab.waitForJob(jobId)).toMatchObject({ status: 'completed', type: 'full' });
    const chain = (await lab.api('GET', `/api/v1/audit/streams/chain-mixedvm-${lab.repositoryId}?limit=1000`)).body.events as { type: string; data: any }[];
    expect(chain.filter((e) => e.type === 'ChainBroken').map((e) => e.data)).toEqual([
      { restorePointId: first.restorePointId, reason: expect.stringContaining(`bitmap sendense-${first.restorePointId} on disk1 is missing`) },
    ]);
  });
});
