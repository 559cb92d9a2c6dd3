import { DomainError } from '../eventing/domain-error';
import { SyncedInRunQuery } from '../restore-points/queries/synced-in-run.query';
import { SyncJobCommand } from './jobs/commands/sync-job.command';
import { syncJobAggregate, type SyncJobState } from './jobs/sync-job.aggregate';
import { ListSyncJobsQuery } from './queries/sync-jobs.query';
import { SyncWorkflow } from './sync.workflow';

/**
 * What another hub takes over of a gone hub process's sync runs. The read model, the liveness check, the event
 * store and the command bus are faked (the commands decided by the job's real aggregate, on a state held here); the
 * workflow's own steps are what is tested: claim, remove the unfinished point's files, fail, in that order.
 */
describe("a gone hub process's sync runs, taken over", () => {
  const POINT = 'rp-20261129080000-1a2b3c4d';
  const definition = (syncJobId: string) => ({ syncJobId, remoteId: 'r1', repositoryId: 'repo-1', remoteRepositoryId: null, vms: null, schedule: null, timeZone: null, maxBytesPerSecond: null, retention: null });
  const runOf = (syncJobId: string, runId: string, hubInstance: string, copying = true): SyncJobState => {
    const point = { syncJobId, runId, restorePointId: POINT, vmId: 'vm1', files: ['vm1/vda/x.qcow2'], exportId: 'e1' };
    return { definition: definition(syncJobId), running: { runId, hubInstance, point: copying ? point : null }, unfinished: copying ? point : null };
  };

  /** `states` is the event store: each command is decided and evolved on it; `before` runs ahead of each command (another hub's doing). */
  function workflow(states: Record<string, SyncJobState>, steps: string[], before: (c: SyncJobCommand) => void = () => undefined): SyncWorkflow {
    const none = null as never;
    const gateway = {
      execute: async (c: SyncJobCommand) => {
        before(c);
        const events = await syncJobAggregate.decide(c.decision, states[c.syncJobId]);
        for (const e of events) states[c.syncJobId] = syncJobAggregate.evolve(states[c.syncJobId], e as never);
        steps.push(`${c.decision.kind} ${c.syncJobId}`);
        return { eventIds: events.map((_, i) => `e${i}`), position: '1' };
      },
    };
    const queries = {
      execute: async (q: unknown) => {
        if (q instanceof ListSyncJobsQuery) return Object.entries(states).map(([syncJobId, s]) => ({ syncJobId, repositoryId: 'repo-1', lastRun: { status: s.running ? 'running' : 'completed' } }));
        if (q instanceof SyncedInRunQuery) return q.runId === 'run-1' ? [{ restorePointId: 'rp-20261129070000-0a0b0c0d', bytesReceived: 42 }] : [];
        throw new Error(`unexpected query ${String(q)}`);
      },
    };
    const aggregates = { load: async (stream: string) => ({ state: states[stream.replace(/^sync-job-/, '')] }) };
    const repositories = { usable: async () => ({ root: '/repo-1' }) };
    const projections = { waitForCaughtUp: async () => undefined };
    const created = new SyncWorkflow({ goneHubAfterMs: 0 } as never, 'this-hub', gateway as never, queries as never, aggregates as never, repositories as never, none, none, none, projections as never, none, none, { gone: async (id: string) => id === 'gone-hub' } as never, none, none);
    (created as unknown as { clearUnfinishedFiles: (root: string, repositoryId: string, u: { restorePointId: string }) => Promise<void> }).clearUnfinishedFiles = async (root, _repositoryId, u) => {
      steps.push(`remove ${root} ${u.restorePointId}`);
    };
    return created;
  }
  const takeOver = (w: SyncWorkflow) => (w as unknown as { takeOverOrphans(): Promise<void> }).takeOverOrphans();

  it("claims the run of the gone process, removes its unfinished point's files while the job still shows it, then fails it with the points it recorded; leaves a live hub's and this process's own", async () => {
    const steps: string[] = [];
    const states = { 'job-gone': runOf('job-gone', 'run-1', 'gone-hub'), 'job-alive': runOf('job-alive', 'run-2', 'live-hub', false), 'job-mine': runOf('job-mine', 'run-3', 'this-hub', false) };
    const failed: unknown[] = [];
    await takeOver(workflow(states, steps, (c) => c.decision.kind === 'failRun' && failed.push(c.decision)));
    expect(steps).toEqual(['adoptRun job-gone', `remove /repo-1 ${POINT}`, 'failRun job-gone']);
    expect(failed).toEqual([
      { kind: 'failRun', result: { runId: 'run-1', reason: `left during the copy of ${POINT} by hub process gone-hub, which stopped and did not come back`, restorePointId: POINT, synced: ['rp-20261129070000-0a0b0c0d'], bytesReceived: 42 } },
    ]);
    expect([states['job-gone'].running, states['job-alive'].running?.runId, states['job-mine'].running?.runId]).toEqual([null, 'run-2', 'run-3']);
  });

  it('does nothing to a run another hub claimed first, or that its owner ended after all, between the look and the claim', async () => {
    for (const meanwhile of [(s: SyncJobState) => ({ ...s, running: { ...s.running!, hubInstance: 'other-hub' } }), (s: SyncJobState) => ({ ...s, running: null })]) {
      const steps: string[] = [];
      const states = { 'job-gone': runOf('job-gone', 'run-1', 'gone-hub') };
      const w = workflow(states, steps, (c) => {
        if (c.decision.kind === 'adoptRun') states['job-gone'] = meanwhile(states['job-gone']);
      });
      await takeOver(w);
      expect(steps).toEqual([]);
    }
  });

  it("refuses a claim of a run that is not the named process's", () => {
    expect(() => syncJobAggregate.decide({ kind: 'adoptRun', runId: 'run-1', from: 'gone-hub', hubInstance: 'this-hub' }, runOf('j', 'run-1', 'other-hub'))).toThrow(DomainError);
    expect(() => syncJobAggregate.decide({ kind: 'adoptRun', runId: 'run-0', from: 'gone-hub', hubInstance: 'this-hub' }, runOf('j', 'run-1', 'gone-hub'))).toThrow(/no longer gone-hub's to take over/);
  });
});
