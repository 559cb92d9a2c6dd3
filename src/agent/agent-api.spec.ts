import { AgentApi } from './agent-api';
import type { BackupRunner } from './backup-runner';
import type { RestoreRunner } from './restore-runner';
import type { BackupSource } from './sources/backup-source';
import type { PlanRequest } from '../wire/backup-protocol';

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
});
