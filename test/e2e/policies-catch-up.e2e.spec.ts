import { BackupLab } from '../support/backup-lab';
import { FakedClock } from '../support/faked-clock';

const MINUTE = 60_000;

type Recorded = { type: string; data: any };

/**
 * Slots that pass while no hub runs: the only hub stops, and it comes back with its clock (libfaketime,
 * an offset the test writes to a file) three and a half minutes on, so three minutely slots passed while
 * it was down without the test waiting for them. A policy with `catchUp: once` runs the newest of them
 * once and records the others missed; one with `catchUp: skip` records all of them missed and runs nothing.
 * The slots are a minute apart because a slot counts as missed only once it is older than the scheduler's
 * lateness threshold (LATE_AFTER_MS, 30 s): with a closer schedule the newest slot is always on time when
 * the hub comes back, and the hub just runs it.
 */
describe('slots missed while every hub was down (real hub process + agent, the hub clock moved on while it was down)', () => {
  const clock = new FakedClock('catch-up');
  const setOffset = (ms: number) => clock.ahead(ms);
  const lab = new BackupLab(clock.env);

  beforeAll(async () => {
    clock.requireLibrary();
    setOffset(0);
    await lab.start(undefined, undefined, true);
    await lab.until(async () => ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string }[]).some((v) => v.vmId === 'vm2'), 30_000, 'the agent to report vm2');
  }, 120_000);

  afterAll(async () => {
    await lab.close();
    clock.remove();
  }, 60_000);

  const stream = async (name: string) => ((await lab.api('GET', `/api/v1/audit/streams/${name}?limit=1000`)).body.events ?? []) as Recorded[];
  const policy = (name: string, vmId: string, catchUp: 'once' | 'skip', enabled = true) => ({
    name,
    vms: { ids: [vmId] },
    repositoryId: lab.repositoryId,
    // second 0 of every minute
    schedule: { cron: '0 * * * * *', timezone: 'UTC', catchUp },
    retention: { keepLast: 100 },
    rpoHours: 1,
    enabled,
  });
  const jobsOf = async (vmId: string) => ((await lab.api('GET', `/api/v1/backups?vmId=${vmId}&limit=500`)).body.jobs as { jobId: string }[]).map((j) => j.jobId);

  it('catchUp once runs one catch-up backup for all the missed slots; catchUp skip records them missed and runs none', async () => {
    // created well inside a minute, so no slot falls between their creation and the hub's stop
    while (new Date().getUTCSeconds() < 2 || new Date().getUTCSeconds() > 45) await new Promise((r) => setTimeout(r, 500));
    const once = (await lab.api('POST', '/api/v1/policies', policy('catch-up-once', 'vm1', 'once'))).body.policyId as string;
    const skip = (await lab.api('POST', '/api/v1/policies', policy('catch-up-skip', 'vm2', 'skip'))).body.policyId as string;
    const minute = Math.floor(Date.now() / MINUTE) * MINUTE;
    const slot = (n: number) => new Date(minute + n * MINUTE).toISOString();
    expect(await stream(`slots-policy-${once}`)).toEqual([]);
    expect(await stream(`slots-policy-${skip}`)).toEqual([]);

    await lab.stop(lab.hub);
    // back 31 s after the third slot since the policies were made (at the earliest: starting takes a few seconds more)
    setOffset(minute + 3 * MINUTE + 31_000 - Date.now());
    await lab.startHub();
    await lab.until(async () => (await stream(`slots-policy-${once}`)).length >= 2 && (await stream(`slots-policy-${skip}`)).length >= 1, 30_000, 'the scheduler to handle the missed slots');
    // off before the next minutely slot comes (at least 29 s away): only what the restart decided is recorded
    for (const [id, p] of [[once, policy('catch-up-once', 'vm1', 'once', false)], [skip, policy('catch-up-skip', 'vm2', 'skip', false)]] as const) {
      expect((await lab.api('PUT', `/api/v1/policies/${id}`, p)).status).toBe(200);
    }

    const onceSlots = await stream(`slots-policy-${once}`);
    expect(onceSlots.map((e) => [e.type, e.data])).toEqual([
      ['SlotMissed', { policyId: once, firstSlot: slot(1), slot: slot(2), count: 2, reason: 'no hub was running the scheduler (catchUp: once)' }],
      ['SlotFired', expect.objectContaining({ policyId: once, slot: slot(3), vmId: 'vm1', manual: false, catchUp: true })],
    ]);
    const catchUpJob = onceSlots[1].data.jobId;
    expect(await lab.waitForJob(catchUpJob, 90_000)).toMatchObject({ status: 'completed', vmId: 'vm1' });
    expect(await jobsOf('vm1')).toEqual([catchUpJob]);

    expect((await stream(`slots-policy-${skip}`)).map((e) => [e.type, e.data])).toEqual([
      ['SlotMissed', { policyId: skip, firstSlot: slot(1), slot: slot(3), count: 3, reason: 'no hub was running the scheduler (catchUp: skip)' }],
    ]);
    expect(await jobsOf('vm2')).toEqual([]);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }, 240_000);
});
