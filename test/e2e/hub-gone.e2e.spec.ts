import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MiB } from '../fixtures/vm/sample-vm';
import { BackupLab } from '../support/backup-lab';
import { freePort, processesMentioning, SpawnedCli } from '../support/processes';

const CHECK = { SENDENSE_GONE_HUB_CHECK_S: '1', SENDENSE_GONE_HUB_AFTER_S: '3' };

/**
 * Two real hub processes on one database; the first holds the agent's session and runs its backup. A hub process
 * restarted on its data dir recovers its own jobs; one whose host is lost never comes back, and its jobs stayed
 * `running` for good, the VM refusing every later backup (409) and a cancel sent to the other hub ending nothing.
 */
describe('the work of a hub process that is gone for good is taken over by another hub on the same database', () => {
  const lab = new BackupLab(CHECK);
  /** A hub of its own database that the two hubs pull restore points from. */
  const primary = new BackupLab({ DATABASE_URL: '', SENDENSE_NBD_PORTS: '14440-14471' });
  let second: SpawnedCli | undefined;
  let secondPort = 0;

  beforeAll(async () => {
    await lab.start([64 * MiB, 768 * MiB], [0, 640 * MiB]);
    secondPort = await freePort();
    // on a host of its own: its port leases are another pool, as between two machines
    second = await lab.startSecondHub(secondPort, { SENDENSE_NBD_PORTS: '14400-14431', SENDENSE_HOST_ID: 'other-host', ...CHECK });
  }, 240_000);
  afterAll(async () => {
    primary.hub?.child.kill('SIGCONT');
    await lab.stop(second);
    await lab.close();
    await primary.close();
  }, 90_000);

  it('a backup running on a live hub is left alone; once that hub is gone for long, the other hub fails it, cleans up and frees the VM; the hub that comes back after all stops the exports it left', async () => {
    const first = readFileSync(join(lab.hubDataDir, 'instance-id'), 'utf8').trim();
    const jobId = await lab.backup('full');
    await lab.until(async () => (await lab.job(jobId)).phase === 'transferring', 60_000, `job ${jobId} to start transferring`);
    // the agent holds still: the job stays mid-transfer on the first hub
    lab.agent!.child.kill('SIGSTOP');
    expect((await lab.events(jobId)).find((e) => e.type === 'BackupStarted')?.data.hubInstance).toBe(first);
    // the second hub looks every second: a job of a live hub process is never taken from it
    await new Promise((r) => setTimeout(r, 5_000));
    expect(await lab.job(jobId)).toMatchObject({ status: 'running', phase: 'transferring' });

    // the first hub process dies and stays away (its exports run on, detached, as after any crash), and so does the
    // agent that reached it
    lab.hub!.child.kill('SIGKILL');
    await lab.hub!.exited;
    const exports = processesMentioning(lab.hubDataDir).filter((p) => p.cmdline.includes('qemu-nbd'));
    expect(exports).toHaveLength(2);
    lab.agent!.child.kill('SIGKILL');
    await lab.agent!.exited;

    // from here the lab's calls go to the second hub
    const firstPort = lab.apiPort;
    lab.apiPort = secondPort;
    const taken = await lab.waitForJob(jobId, 30_000);
    expect({ status: taken.status, error: taken.error }).toEqual({ status: 'failed', error: `left during transferring by hub process ${first}, which stopped and did not come back` });
    const events = (await lab.events(jobId)).map((e) => e.type);
    expect(events.slice(-2)).toEqual(['BackupTargetsReleased', 'BackupFailed']);
    // its partial files are gone; the VM takes a new backup (it waits for its agent)
    expect((await lab.leftovers()).strayFiles).toEqual([]);
    // the agent's session through the gone hub is recorded as ended, so its next jobs are not left to that hub
    await lab.until(async () => (await lab.api('GET', '/api/v1/agents')).body.every((a: { connected: boolean }) => !a.connected), 30_000, 'the agent to read disconnected');
    const agentId = (await lab.api('GET', '/api/v1/agents')).body[0].agentId;
    const ended = (await lab.api('GET', `/api/v1/audit/streams/agent-${agentId}?limit=1000`)).body.events.filter((e: { type: string }) => e.type === 'AgentDisconnected').at(-1);
    expect(ended.data.reason).toBe(`its hub process ${first} stopped and did not come back`);
    const again = await lab.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId: lab.repositoryId, type: 'full' });
    expect(again.status).toBe(202);
    expect((await lab.api('POST', `/api/v1/backups/${again.body.jobId}/cancel`)).status).toBe(202);
    expect(await lab.waitForJob(again.body.jobId, 60_000)).toMatchObject({ status: 'failed', error: 'cancelled' });

    // the first hub comes back after all: it adopts the exports it left, finds their job ended, and stops them
    lab.apiPort = firstPort;
    await lab.startHub();
    await lab.until(async () => processesMentioning(lab.hubDataDir).every((p) => !p.cmdline.includes('qemu-nbd')), 30_000, 'the exports of the ended job to stop');
    // each port is released after its export stopped (seen on a loaded machine: one still leased as the last ended)
    const clean = { qemuNbd: [], leases: 0, strayFiles: [] };
    await lab.until(async () => JSON.stringify(await lab.leftovers()) === JSON.stringify(clean), 30_000, 'the ports of the stopped exports to be released');
    expect(await lab.leftovers()).toEqual(clean);
  }, 240_000);

  it("a sync run of a hub process that is gone for good is failed by the other hub, and the job runs again there; until then it refused every run as already running", async () => {
    await primary.start([16 * MiB, 16 * MiB], [0, 0]);
    const point = (await primary.waitForJob(await primary.backup('full'), 60_000)).restorePointId as string;
    const first = readFileSync(join(lab.hubDataDir, 'instance-id'), 'utf8').trim();
    const identity = (await primary.api('GET', '/api/v1/identity')).body;
    const token = (await primary.api('POST', '/api/v1/tokens', { name: 'pull', role: 'sync' })).body.token;
    const remote = await lab.api('POST', '/api/v1/remotes', { name: 'primary', url: `ssh://127.0.0.1:${primary.sshPort}`, token, fingerprint: identity.ssh.hostKeyFingerprint });
    expect(remote.status).toBe(201);
    const created = await lab.api('POST', '/api/v1/sync-jobs', { remoteId: remote.body.remoteId, repositoryId: lab.repositoryId, remoteRepositoryId: primary.repositoryId });
    expect(created.status).toBe(201);
    const syncJobId = created.body.syncJobId as string;
    const lastRun = async () => (await lab.api('GET', `/api/v1/sync-jobs/${syncJobId}`)).body.lastRun;

    // the remote holds still, so the run started on the first hub stays under way there
    primary.hub!.child.kill('SIGSTOP');
    const started = await lab.api('POST', `/api/v1/sync-jobs/${syncJobId}/run`);
    expect(started.status).toBe(202);
    const runId = started.body.runId as string;
    await new Promise((r) => setTimeout(r, 5_000));
    expect(await lastRun()).toMatchObject({ runId, status: 'running' });
    lab.hub!.child.kill('SIGKILL');
    await lab.hub!.exited;

    const firstPort = lab.apiPort;
    lab.apiPort = secondPort;
    const refused = await lab.api('POST', `/api/v1/sync-jobs/${syncJobId}/run`);
    expect({ status: refused.status, message: refused.body.message }).toEqual({ status: 409, message: expect.stringContaining('is already running') });
    await lab.until(async () => (await lastRun())?.status === 'failed', 30_000, 'the gone hub\'s sync run to be failed');
    expect(await lastRun()).toMatchObject({ runId, status: 'failed', reason: `left during the run by hub process ${first}, which stopped and did not come back`, synced: [] });
    // claimed by the second hub process, whose claim is the failure's cause, in one story
    const story = (await lab.api('GET', `/api/v1/audit/streams/sync-job-${syncJobId}?limit=100`)).body.events as { eventId: string; type: string; data: any; metadata: any }[];
    const claim = story.find((e) => e.type === 'SyncRunAdopted')!;
    const failure = story.find((e) => e.type === 'SyncRunFailed' && e.data.runId === runId)!;
    expect(claim.data).toEqual({ syncJobId, runId, from: first, hubInstance: expect.not.stringMatching(first) });
    expect({ cause: failure.metadata.causationId, story: failure.metadata.correlationId }).toEqual({ cause: claim.eventId, story: claim.metadata.correlationId });

    primary.hub!.child.kill('SIGCONT');
    const again = await lab.api('POST', `/api/v1/sync-jobs/${syncJobId}/run`);
    expect(again.status).toBe(202);
    await lab.until(async () => (await lastRun())?.runId === again.body.runId && (await lastRun()).status !== 'running', 60_000, 'the sync run on the second hub to end');
    const ended = await lastRun();
    expect({ status: ended.status, synced: ended.synced, reason: ended.reason }).toEqual({ status: 'completed', synced: [point], reason: null });

    lab.apiPort = firstPort;
    await lab.startHub();
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }, 240_000);
});
