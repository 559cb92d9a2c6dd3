import { DomainError } from '../eventing/domain-error';
import { RestoreRequest, RestoreWorkflow } from './restore.workflow';

/**
 * Which points a whole-VM restore (and a drill, which is requested the same way) may be made from, decided before
 * anything is recorded. The point's view is faked; the next check after the point's (the agent's) stops the request.
 */
describe('a restore request and the status of its point', () => {
  const request: RestoreRequest = { restorePointId: 'rp-1', agentId: 'a1', mode: 'full', target: { kind: 'new-domain', name: 'restored', storageDir: null, start: false }, definition: null, force: false };

  function workflow(status: 'available' | 'deleting' | 'recycled'): RestoreWorkflow {
    const points = { view: async () => ({ restorePointId: 'rp-1', vmId: 'vm1', status, integrity: 'verified', damaged: [] }) };
    const agents = {
      state: async () => {
        throw new DomainError('not_found', 'agent a1 is unknown');
      },
    };
    const none = null as never;
    return new RestoreWorkflow({ goneHubAfterMs: 600_000 } as never, none, 'hub', none, none, none, none, none, agents as never, none, none, none, points as never, none, none, none, { gone: async () => false } as never);
  }

  it('a point being deleted is refused with 409', async () => {
    await expect(workflow('deleting').request(request)).rejects.toMatchObject({ kind: 'conflict', message: 'restore point rp-1 is being deleted' });
  });

  it("a point in the recycle bin passes: its files are there until its purge, which waits for the restore's end", async () => {
    await expect(workflow('recycled').request(request)).rejects.toMatchObject({ kind: 'not_found', message: 'agent a1 is unknown' });
    await expect(workflow('available').request(request)).rejects.toMatchObject({ kind: 'not_found', message: 'agent a1 is unknown' });
  });
});
