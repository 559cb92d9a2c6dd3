import { BackupLab } from '../support/backup-lab';

/** With SENDENSE_MAX_CONCURRENT_BACKUPS=1, a second VM's job waits in the queue until the first ends. */
describe('backup job queue', () => {
  const lab = new BackupLab({ SENDENSE_MAX_CONCURRENT_BACKUPS: '1' });
  beforeAll(async () => lab.start(undefined, undefined, true), 120_000);
  afterAll(async () => lab.close(), 60_000);

  it('runs jobs one at a time beyond the limit and both complete', async () => {
    await lab.until(async () => (await lab.api('GET', '/api/v1/vms')).body.length === 2, 30_000, 'both VMs in the inventory');
    const first = await lab.backup('full', 'vm1');
    const second = await lab.backup('full', 'vm2');
    expect((await lab.job(second)).phase).toBe('queued');
    const [a, b] = [await lab.waitForJob(first), await lab.waitForJob(second)];
    expect([a.status, b.status]).toEqual(['completed', 'completed']);
    const firstEnded = (await lab.events(first)).find((e) => e.type === 'BackupCompleted') as unknown as { time: string };
    const secondStarted = (await lab.events(second)).find((e) => e.type === 'BackupStarted') as unknown as { time: string };
    expect(new Date(secondStarted.time).getTime()).toBeGreaterThanOrEqual(new Date(firstEnded.time).getTime());
    // The queued job runs under its own request's correlation id, not under the job whose end started it.
    const correlations = async (jobId: string) => new Set((await lab.events(jobId)).map((e) => e.metadata.correlationId));
    const [ofFirst, ofSecond] = [await correlations(first), await correlations(second)];
    expect([ofFirst.size, ofSecond.size]).toEqual([1, 1]);
    expect([...ofSecond]).not.toEqual([...ofFirst]);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  });
});
