import { FailRestoreCommand } from './commands/fail-restore.command';
import { RestoreWorkflow } from './restore.workflow';

/**
 * What another hub takes over of a gone hub process's restores. The read model, the liveness check and the command
 * bus are faked; the workflow's own decision is what is tested.
 */
describe("a gone hub process's restores, taken over", () => {
  const restores = {
    'r-writing': { restoreId: 'r-writing', phase: 'writing', startedBy: 'gone-hub', agentId: 'a1', exports: [{ leaseId: 'l-writing' }] },
    'r-pulling': { restoreId: 'r-pulling', phase: 'pulling', startedBy: 'gone-hub', agentId: 'a1', exports: [{ leaseId: 'l-pulling' }] },
    'r-mine': { restoreId: 'r-mine', phase: 'writing', startedBy: 'this-hub', agentId: 'a1', exports: [{ leaseId: 'l-mine' }] },
  } as const;

  function workflow(sent: unknown[], abandoned: unknown[][] = []): RestoreWorkflow {
    const none = null as never;
    const config = { goneHubAfterMs: 0 };
    const store = { readStream: async () => [{ id: 'e1', metadata: { correlationId: 'c1' } }] };
    const commands = { execute: async (c: unknown) => (sent.push(c), { eventIds: ['e2'], position: '1' }) };
    const queries = { execute: async () => Object.keys(restores).map((restoreId) => ({ restoreId })) };
    const reader = { get: async (id: keyof typeof restores) => restores[id] };
    const tunnel = { isConnected: () => false };
    const exports = { leasesOfJob: async () => [], isRunning: () => false, abandon: async (...args: unknown[]) => void abandoned.push(args) };
    return new RestoreWorkflow(config as never, store as never, 'this-hub', commands as never, none, queries as never, none, reader as never, none, tunnel as never, none, exports as never, none, none, none, none, { gone: async (id: string) => id === 'gone-hub' } as never);
  }

  it("fails the restore that was writing, and leaves alone an instant recovery whose domain runs and this process's own", async () => {
    const sent: unknown[] = [];
    const abandoned: unknown[][] = [];
    await (workflow(sent, abandoned) as unknown as { takeOverOrphans(): Promise<void> }).takeOverOrphans();
    const failed = sent.filter((c): c is FailRestoreCommand => c instanceof FailRestoreCommand);
    const reason = 'left during writing by hub process gone-hub, which stopped and did not come back';
    expect(failed.map((c) => [c.restoreId, c.reason])).toEqual([['r-writing', reason]]);
    // its exports on the gone process are recorded ended, so that they hold its point no longer
    expect(abandoned).toEqual([[['l-writing'], 'gone-hub', reason]]);
  });
});
