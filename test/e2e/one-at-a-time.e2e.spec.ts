import { MiB, writeToDisk } from '../fixtures/vm/sample-vm';
import { BackupLab } from '../support/backup-lab';
import { freePort, SpawnedCli } from '../support/processes';

type Answer = { status: number; body: any };

/**
 * Two real hub processes on one database, the agent connected to the first: what only the event store can
 * decide (one unfinished job per VM, one delete per chain) is raced across the two processes, where no
 * lock in either process can help.
 */
describe('one job per VM and one delete per chain, decided by the event store across two hub processes', () => {
  const lab = new BackupLab();
  let second: SpawnedCli;
  let secondUrl: string;

  beforeAll(async () => {
    await lab.start();
    const port = await freePort();
    second = await lab.startSecondHub(port, { SENDENSE_NBD_PORTS: '14140-14171' });
    secondUrl = `http://127.0.0.1:${port}`;
  }, 120_000);
  afterAll(async () => {
    await lab.stop(second);
    await lab.close();
  }, 60_000);

  const viaSecond = (method: string, path: string, body?: unknown): Promise<Answer> => lab.apiAt(secondUrl, method, path, body);
  const stream = async (name: string) => (await lab.api('GET', `/api/v1/audit/streams/${name}?limit=1000`)).body.events as { type: string; data: any }[];
  const points = async () => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body as { restorePointId: string; type: string; parentId: string | null; status: string }[];

  it('20 tries of two simultaneous POST /backups for one VM, one to each hub: each try creates exactly one job, the other answer is 409', async () => {
    const request = { vmId: 'vm1', repositoryId: lab.repositoryId, type: 'auto' };
    const accepted: string[] = [];
    const tries: number[][] = [];
    for (let i = 0; i < 20; i++) {
      const answers = await Promise.all([lab.api('POST', '/api/v1/backups', request), viaSecond('POST', '/api/v1/backups', request)]);
      tries.push(answers.map((a) => a.status).sort());
      const won = answers.filter((a) => a.status === 202);
      const lost = answers.filter((a) => a.status === 409);
      if (won.length !== 1 || lost.length !== 1) continue;
      expect(lost[0].body.message).toContain(`VM vm1 already has a backup job running: ${won[0].body.jobId}`);
      accepted.push(won[0].body.jobId);
      // A job the second hub took waits for the agent (connected to the first hub) and then fails: either way it ends and frees the VM.
      expect(['completed', 'failed']).toContain((await lab.waitForJob(won[0].body.jobId, 60_000)).status);
    }
    expect(tries).toEqual(Array(20).fill([202, 409]));
    const jobs = (await lab.api('GET', '/api/v1/backups?vmId=vm1&limit=100')).body.jobs.map((j: { jobId: string }) => j.jobId);
    expect(jobs.sort()).toEqual([...accepted].sort());
    // The loser recorded nothing: one claim and one release per accepted job, in turn.
    const claims = await stream('vm-backups-vm1');
    expect(claims.map((e) => e.type)).toEqual(accepted.flatMap(() => ['BackupJobClaimed', 'BackupJobReleased']));
    expect(claims.filter((e) => e.type === 'BackupJobClaimed').map((e) => e.data.jobId)).toEqual(accepted);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }, 900_000);

  it('two simultaneous DELETEs on one chain, one to each hub: one 200, one 409, three times over', async () => {
    for (let round = 0; round < 3; round++) {
      // A large child makes the merge of the oldest point take a while, so the two deletes overlap.
      for (const d of lab.vm.disks) await writeToDisk(d.path, [{ offset: 4 * MiB, length: 40 * MiB, pattern: 0x30 + round }]);
      expect(await lab.waitForJob(await lab.backup('auto'), 60_000)).toMatchObject({ status: 'completed' });
      const [oldest, child] = await points();
      const answers = await Promise.all([lab.api('DELETE', `/api/v1/restore-points/${oldest.restorePointId}`), viaSecond('DELETE', `/api/v1/restore-points/${oldest.restorePointId}`)]);
      expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
      expect(answers.find((a) => a.status === 409)!.body.message).toMatch(`the chain is busy deleting restore point ${oldest.restorePointId}`);
      const after = await points();
      expect(after[0]).toMatchObject({ restorePointId: child.restorePointId, type: 'full', parentId: null, status: 'available' });
      expect(after.some((p) => p.restorePointId === oldest.restorePointId)).toBe(false);
    }
    const chain = (await stream(`chain-vm1-${lab.repositoryId}`)).map((e) => e.type);
    expect(chain.filter((t) => t === 'RestorePointDeleteStarted')).toHaveLength(3);
    expect(chain.filter((t) => t === 'RestorePointMerged')).toHaveLength(3);
  }, 300_000);
});
