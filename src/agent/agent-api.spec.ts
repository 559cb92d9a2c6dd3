import { AgentApi } from './agent-api';
import type { BackupRunner } from './backup-runner';
import { Refusal } from './refusal';
import type { RestoreRunner } from './restore-runner';
import { RestoreConflict } from './sources/libvirt/libvirt-restorer';
import type { BackupSource } from './sources/backup-source';
import type { PlanRequest, StartRequest } from '../wire/backup-protocol';
import { fullBackupRequest } from '../../test/fixtures/agent/start-request';

/** The runner is the collaborator: a fake that records the plans the API hands it. */
describe('AgentApi: the plan request', () => {
  const plans: PlanRequest[] = [];
  const runner = { plan: async (r: PlanRequest) => (plans.push(r), { mode: 'incremental', reason: null, disks: [] }) } as unknown as BackupRunner;
  const api = new AgentApi({} as BackupSource, runner, {} as RestoreRunner);
  let port = 0;
  beforeAll(async () => (port = await api.listen()));
  afterAll(() => api.close());
  beforeEach(() => (plans.length = 0));

  const plan = (body: unknown) => fetch(`http://127.0.0.1:${port}/api/v1/backup/plan`, { method: 'POST', body: JSON.stringify(body) });

  it('hands the point\'s disks, with their changeRefs, to the runner', async () => {
    const sinceDisks = [{ diskId: 'disk-2000', virtualSize: 1024, changeRef: '52 aa/3' }, { diskId: 'disk-2001', virtualSize: 0, changeRef: null }];
    expect((await plan({ vmId: 'vm1', sincePointId: 'rp-1', sinceDisks })).status).toBe(200);
    expect(plans).toEqual([{ vmId: 'vm1', sincePointId: 'rp-1', sinceDisks }]);
  });

  it.each([
    ['without a point', { vmId: 'vm1', sincePointId: null, sinceDisks: [] }, /needs a sincePointId/],
    ['not an array', { vmId: 'vm1', sincePointId: 'rp-1', sinceDisks: {} }, /must be an array/],
    ['a bad size', { vmId: 'vm1', sincePointId: 'rp-1', sinceDisks: [{ diskId: 'd', virtualSize: -1, changeRef: null }] }, /virtualSize must be a byte count/],
    ['a long changeRef', { vmId: 'vm1', sincePointId: 'rp-1', sinceDisks: [{ diskId: 'd', virtualSize: 1, changeRef: 'x'.repeat(257) }] }, /changeRef must be a string of at most 256/],
    ['a bad disk id', { vmId: 'vm1', sincePointId: 'rp-1', sinceDisks: [{ diskId: '../d', virtualSize: 1, changeRef: null }] }, /diskId must be/],
    ['a disk that is not an object', { vmId: 'vm1', sincePointId: 'rp-1', sinceDisks: [null] }, /must be objects/],
  ])('refuses sinceDisks %s with a 400, and plans nothing', async (_what, body, message) => {
    const res = await plan(body);
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toMatch(message);
    expect(plans).toEqual([]);
  });

  it("a VM this host cannot back up now is the refusal's status with its words; any other failure is 500", async () => {
    const planning = runner.plan;
    try {
      runner.plan = async () => {
        throw new Refusal(409, 'domain web is still copying vda from the hub (an instant recovery): back it up once the copy has ended');
      };
      const refused = await plan({ vmId: 'vm1', sincePointId: 'rp-1', sinceDisks: [] });
      expect({ status: refused.status, message: ((await refused.json()) as { message: string }).message }).toEqual({ status: 409, message: 'domain web is still copying vda from the hub (an instant recovery): back it up once the copy has ended' });
      runner.plan = async () => {
        throw new Error('virsh dumpxml vm1: failed to connect to the hypervisor');
      };
      expect((await plan({ vmId: 'vm1', sincePointId: 'rp-1', sinceDisks: [] })).status).toBe(500);
    } finally {
      runner.plan = planning;
    }
  });
});

/** The runner's check is the collaborator: what it throws is what the hub is answered. */
describe("AgentApi: the restore check's answer", () => {
  let thrown: Error | null = null;
  const restores = { check: async () => {
    if (thrown) throw thrown;
  } } as unknown as RestoreRunner;
  const api = new AgentApi({} as BackupSource, {} as BackupRunner, restores);
  let port = 0;
  beforeAll(async () => (port = await api.listen()));
  afterAll(() => api.close());

  const request = {
    restoreId: '0b9bd5a4-61c9-4a55-9d5c-2f0c4e7b3a11',
    correlationId: 'check',
    restorePointId: 'rp-1',
    vmId: 'vm-1',
    mode: 'full',
    target: { kind: 'replace', vmId: 'vm-1' },
    configuration: null,
    definition: null,
    disks: [{ diskId: 'vda', virtualSize: 1048576, digests: false, requiredBytes: 65536 }],
  };
  const check = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/restore/check`, { method: 'POST', body: JSON.stringify(request) });
    return { status: res.status, message: ((await res.json()) as { message?: string }).message };
  };

  it.each(([
    [new Refusal(404, "VM vm-1 is not a domain of this agent's libvirt (qemu:///system): restore the point as a new domain"), 404],
    [new Refusal(409, 'domain web has no file /srv/web.qcow2 for its disk vda (moved or removed?): put it back, or restore the point as a new domain'), 409],
    [new Refusal(422, 'storageDir /srv/x is not writable by the agent (a read-only filesystem)'), 422],
    [new RestoreConflict('domain web is running: shut it off before its disks are replaced'), 409],
    // not the request's fault: the hub answers its caller 502, naming this agent
    [new Error('virsh domstate vm-1: failed to connect to the hypervisor'), 500],
  ] as const).map(([error, status]) => [error.constructor.name, status, error] as const))('%s is %i with its message', async (_name, status, error) => {
    thrown = error;
    expect(await check()).toEqual({ status, message: error.message });
  });

  it('a check that passes is 200', async () => {
    thrown = null;
    expect((await check()).status).toBe(200);
  });
});

describe('AgentApi: the start request', () => {
  const started: StartRequest[] = [];
  const api = new AgentApi({} as BackupSource, { start: (r: StartRequest) => started.push(r) } as unknown as BackupRunner, {} as RestoreRunner);
  let port = 0;
  beforeAll(async () => (port = await api.listen()));
  afterAll(() => api.close());

  const start = (body: unknown) => fetch(`http://127.0.0.1:${port}/api/v1/backup/start`, { method: 'POST', body: JSON.stringify(body) });

  it('refuses a start that names no hub event as the cause of its reports, and starts nothing', async () => {
    const { causationId: _cause, ...uncaused } = fullBackupRequest(['disk0']);
    for (const body of [uncaused, { ...uncaused, causationId: 'SnapshotRequested' }]) {
      const res = await start(body);
      expect({ status: res.status, body: await res.json() }).toEqual({ status: 400, body: { statusCode: 400, message: 'causationId must be an event id (a lowercase UUID)' } });
    }
    expect(started).toEqual([]);
    expect((await start(fullBackupRequest(['disk0']))).status).toBe(202);
    expect(started).toEqual([fullBackupRequest(['disk0'])]);
  });

  it("passes on which targets already hold a point (known), and refuses a known that is not a boolean", async () => {
    started.length = 0;
    const request = fullBackupRequest(['disk0', 'disk1']);
    const known = { ...request, disks: [{ ...request.disks[0], known: true }, request.disks[1]] };
    expect((await start(known)).status).toBe(202);
    expect(started.map((r) => r.disks.map((d) => d.known))).toEqual([[true, undefined]]);
    const res = await start({ ...request, disks: [{ ...request.disks[0], known: 'yes' }] });
    expect({ status: res.status, body: await res.json() }).toEqual({ status: 400, body: { statusCode: 400, message: 'disks[].known must be a boolean' } });
    expect(started).toHaveLength(1);
  });
});

describe("AgentApi: whether a backup job still runs here", () => {
  const running = new Set(['7c1e9a52-1111-4222-8333-444455556666']);
  const api = new AgentApi({} as BackupSource, { isRunning: (jobId: string) => running.has(jobId) } as unknown as BackupRunner, {} as RestoreRunner);
  let port = 0;
  beforeAll(async () => (port = await api.listen()));
  afterAll(() => api.close());

  it('answers running until the job has delivered its last report, and refuses a malformed id', async () => {
    const ask = async (jobId: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/backup/${jobId}`);
      return { status: res.status, body: await res.json() };
    };
    expect(await ask('7c1e9a52-1111-4222-8333-444455556666')).toEqual({ status: 200, body: { running: true } });
    expect(await ask('0d6f7b10-1111-4222-8333-444455556666')).toEqual({ status: 200, body: { running: false } });
    expect((await ask('..%2F..')).status).toBe(400);
  });
});
