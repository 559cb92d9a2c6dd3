import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MiB, sameContent, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { FakedClock } from '../support/faked-clock';
import { spawnSendense } from '../support/processes';

const run = promisify(execFile);
const HOUR = 3_600_000;
const START = Date.parse('2024-05-01T00:30:00Z');

/**
 * Retention on real backups: the hub's clock (and with it every restore point's time) is moved by
 * libfaketime, which the test steers through a timestamp file; timers stay on the real monotonic clock.
 */
describe('retention (real hub + agent, the hub clock moved eight hours per backup)', () => {
  const clock = new FakedClock('retention');
  const setClock = (ms: number) => clock.at(ms);
  const lab = new BackupLab(clock.env);
  let policyId: string;

  beforeAll(async () => {
    clock.requireLibrary();
    setClock(START - HOUR);
    await lab.start();
    const definition = {
      name: 'keep-2-last-3-daily',
      vms: { ids: ['vm1'] },
      repositoryId: lab.repositoryId,
      // never due in May: the test requests each backup itself, at the moment it set the clock to
      schedule: { cron: '0 0 1 1 *', timezone: 'UTC', catchUp: 'skip' },
      retention: { keepLast: 2, keepDaily: 3 },
      rpoHours: 12,
      enabled: true,
    };
    const created = await lab.api('POST', '/api/v1/policies', definition);
    if (created.status === 404) {
      // the policies API is not composed into this build: record the policy as its create command would
      policyId = randomUUID();
      const metadata = { correlationId: randomUUID(), causationId: randomUUID(), actor: 'test', schemaVersion: 1 };
      await lab.db.store.append(`policy-${policyId}`, [{ type: 'PolicyCreated', data: { ...definition, fullEvery: null, policyId, createdAt: new Date(START).toISOString() }, metadata }], 'no_stream');
    } else {
      if (created.status !== 201) throw new Error(`policy refused: ${created.status} ${JSON.stringify(created.body)}`);
      policyId = created.body.policyId;
    }
  }, 120_000);

  afterAll(async () => {
    await lab.close();
    clock.remove();
  });

  const decisions = async () => ((await lab.api('GET', `/api/v1/audit/streams/retention-${policyId}?limit=1000`)).body.events ?? []).filter((e: { type: string }) => e.type === 'RetentionDecided');
  const points = async (): Promise<{ restorePointId: string; parentId: string | null; createdAt: string; disks: { diskId: string; file: string }[] }[]> =>
    (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body;

  it('keeps exactly the points PBS keep-last 2 + keep-daily 3 keep, each still equal to its source, the chain intact', async () => {
    const sources = new Map<string, { diskId: string; copy: string }[]>();
    /** Real (database) time right after each backup's retention was applied, and the newest point then. */
    const moments: { at: string; restorePointId: string }[] = [];
    for (let i = 0; i < 12; i++) {
      const at = START + i * 8 * HOUR;
      setClock(at);
      for (const [d, disk] of lab.vm.disks.entries()) await writeToDisk(disk.path, [{ offset: (4 + i) * MiB + d * 128 * 1024, length: 192 * 1024, pattern: 0x20 + i }]);
      const copies = lab.vm.disks.map((disk) => {
        const copy = join(lab.dir, `source-${i}-${disk.diskId}.qcow2`);
        copyFileSync(disk.path, copy);
        return { diskId: disk.diskId, copy };
      });
      const jobId = await lab.backup('auto');
      const job = await lab.waitForJob(jobId);
      expect(job).toMatchObject({ status: 'completed' });
      sources.set(job.restorePointId, copies);
      await lab.until(async () => (await decisions()).some((e: { data: { trigger: { backupId?: string } } }) => e.data.trigger.backupId === jobId), 30_000, `the retention decision after ${jobId}`);
      // every decision is applied before the next backup: the chain holds only what the rules keep
      await lab.until(async () => (await points()).length === Math.min(i + 1, i < 2 ? i + 1 : expectedCount(i + 1)), 30_000, `pruning after backup ${i + 1}`);
      moments.push({ at: new Date().toISOString(), restorePointId: job.restorePointId });
    }

    const kept = await points();
    const times = kept.map((p) => p.createdAt.slice(0, 16)).sort();
    // Worked out by hand from PBS's rules: newest two (4th 16:30, 4th 08:30), then the newest point of the 3rd, 2nd and 1st of May.
    expect(times).toEqual(['2024-05-01T16:30', '2024-05-02T16:30', '2024-05-03T16:30', '2024-05-04T08:30', '2024-05-04T16:30']);

    // backtesting: the same policy, its schedule on the times these backups ran, replayed on the recorded history keeps the same points
    const backtest = {
      policy: { name: 'backtest', vms: { ids: ['vm1'] }, repositoryId: lab.repositoryId, schedule: { cron: '30 */8 * * *', timezone: 'UTC' }, retention: { keepLast: 2, keepDaily: 3 }, rpoHours: 12 },
      from: new Date(START - 60_000).toISOString(),
      to: new Date(START + 11 * 8 * HOUR + HOUR).toISOString(),
    };
    const simulated = await lab.api('POST', '/api/v1/policies/simulate', backtest);
    expect(simulated.status).toBe(200);
    const [simulatedVm] = simulated.body.vms;
    expect(simulatedVm).toMatchObject({ vmId: 'vm1', unmodelled: null, backups: 12, overlappingJobs: [] });
    // unprotected only until the replay's first backup: every later point came within the 12 h RPO
    expect(simulatedVm.rpoViolations).toEqual([expect.objectContaining({ from: backtest.from })]);
    expect(simulatedVm.model).toMatchObject({ fulls: 1, incrementals: 11 });
    expect(simulatedVm.pointsAtEnd.map((p: { createdAt: string }) => p.createdAt.slice(0, 16)).sort()).toEqual(times);
    expect((await lab.api('POST', '/api/v1/policies/simulate', backtest)).body).toEqual(simulated.body);
    expect((await lab.api('POST', '/api/v1/policies/simulate', { ...backtest, policy: { ...backtest.policy, retention: {} } })).status).toBe(400);

    const last = (await decisions()).at(-1);
    expect(last.data.marks.map((m: { createdAt: string; keptBy?: string; prunedBy?: string }) => [m.createdAt.slice(0, 16), m.keptBy ?? `pruned:${m.prunedBy}`])).toEqual([
      ['2024-05-04T16:30', 'keep-last'],
      ['2024-05-04T08:30', 'keep-last'],
      ['2024-05-04T00:30', 'pruned:no-rule'],
      ['2024-05-03T16:30', 'keep-daily'],
      ['2024-05-02T16:30', 'keep-daily'],
      ['2024-05-01T16:30', 'keep-daily'],
    ]);

    // the chain: one full at the bottom, every other point reading through the kept point before it
    const byTime = [...kept].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    expect(byTime[0].parentId).toBeNull();
    for (let i = 1; i < byTime.length; i++) expect(byTime[i].parentId).toBe(byTime[i - 1].restorePointId);
    for (const point of byTime) {
      for (const disk of point.disks) {
        const file = join(lab.repoRoot, disk.file);
        await run('qemu-img', ['check', '-q', '-U', file]);
        await run('qemu-img', ['info', '-U', '--backing-chain', file]);
        const source = sources.get(point.restorePointId)!.find((s) => s.diskId === disk.diskId)!;
        expect({ point: point.createdAt, disk: disk.diskId, same: await sameContent(file, source.copy) }).toEqual({ point: point.createdAt, disk: disk.diskId, same: true });
      }
    }
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });

    // the protection report now (the hub's clock: just after the last backup) and as it read after the first backup
    const vm1 = await lab.protectionOf('vm1', (r) => r?.lastRestorePoint?.restorePointId === moments[11].restorePointId);
    expect(vm1).toMatchObject({ status: 'protected', rpoHours: 12, failuresInRow: 0, policies: [{ policyId, name: 'keep-2-last-3-daily' }], nextSlot: '2025-01-01T00:00:00.000Z' });
    expect(vm1.lastRestorePoint.restorePointId).toBe(moments[11].restorePointId);
    const then = (await lab.api('GET', `/api/v1/reports/protection?at=${encodeURIComponent(moments[0].at)}`)).body;
    expect(then.replayed).toBe(true);
    // the first point was pruned long ago, yet the report as it read then names it
    expect(kept.map((p) => p.restorePointId)).not.toContain(moments[0].restorePointId);
    expect(then.vms.find((v: { vmId: string }) => v.vmId === 'vm1').lastRestorePoint.restorePointId).toBe(moments[0].restorePointId);
    expect((await lab.api('GET', '/api/v1/reports/protection?at=yesterday')).status).toBe(400);
    const cli = spawnSendense(['report', 'protection'], { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toMatch(/vm1\s+vm1\s+protected\s+2024-05-04T16:30/);
  }, 600_000);
});

/** How many points keep-last 2 + keep-daily 3 leave after `n` backups three a day. */
function expectedCount(n: number): number {
  const days = Math.ceil(n / 3);
  const newestDayCount = n - (days - 1) * 3;
  // keep-last takes the newest two; their days count as kept for keep-daily, which keeps one point of each of up to 3 further days
  const lastTwoDays = newestDayCount >= 2 ? 1 : 2;
  return 2 + Math.min(3, days - lastTwoDays);
}
