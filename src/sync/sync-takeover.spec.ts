import { SyncedInRunQuery } from '../restore-points/queries/synced-in-run.query';
import { SyncJobCommand } from './jobs/commands/sync-job.command';
import type { SyncJobState } from './jobs/sync-job.aggregate';
import { ListSyncJobsQuery } from './queries/sync-jobs.query';
import { SyncWorkflow } from './sync.workflow';

/**
 * What another hub takes over of a gone hub process's sync runs. The read models, the event store, the liveness
 * check and the command bus are faked; the workflow's own decision is what is tested.
 */
describe("a gone hub process's sync runs, taken over", () => {
  const copying = { runId: 'run-1', restorePointId: 'rp-20261129080000-1a2b3c4d', vmId: 'vm1', files: ['vm1/vda/x.qcow2'], exportId: 'e1', syncJobId: 'job-gone' };
  const states: Record<string, SyncJobState> = {
    'job-gone': { definition: null, running: { runId: 'run-1', hubInstance: 'gone-hub', point: copying } as never, unfinished: copying },
    'job-alive': { definition: null, running: { runId: 'run-2', hubInstance: 'live-hub', point: null } as never, unfinished: null },
    'job-mine': { definition: null, running: { runId: 'run-3', hubInstance: 'this-hub', point: null } as never, unfinished: null },
    'job-idle': { definition: null, running: null, unfinished: null },
  };

  function workflow(sent: SyncJobCommand[], cleared: string[]): SyncWorkflow {
    const none = null as never;
    const config = { goneHubAfterMs: 0 };
    const gateway = { execute: async (c: SyncJobCommand) => (sent.push(c), { eventIds: ['e2'], position: '1' }) };
    const queries = {
      execute: async (q: unknown) => {
        if (q instanceof ListSyncJobsQuery) return Object.entries(states).map(([syncJobId, state]) => ({ syncJobId, repositoryId: 'repo-1', lastRun: { status: state.running ? 'running' : 'completed' } }));
        if (q instanceof SyncedInRunQuery) return q.runId === 'run-1' ? [{ restorePointId: 'rp-20261129070000-0a0b0c0d', bytesReceived: 42 }] : [];
        throw new Error(`unexpected query ${String(q)}`);
      },
    };
    const aggregates = { load: async (stream: string) => ({ state: states[stream.replace(/^sync-job-/, '')] }) };
    const repositories = { usable: async () => ({ root: '/repo-1' }) };
    const projections = { waitForCaughtUp: async () => undefined };
    const created = new SyncWorkflow(config as never, 'this-hub', gateway as never, queries as never, aggregates as never, repositories as never, none, none, none, projections as never, none, none, { gone: async (id: string) => id === 'gone-hub' } as never, none);
    (created as unknown as { clearUnfinishedFiles: (root: string, repositoryId: string, u: { restorePointId: string }) => Promise<void> }).clearUnfinishedFiles = async (root, repositoryId, u) => {
      cleared.push(`${root} ${repositoryId} ${u.restorePointId}`);
    };
    return created;
  }

  it("ends the run of the gone process, its unfinished point's files removed first and the points it recorded kept in its figures; leaves a live hub's and this process's own", async () => {
    const sent: SyncJobCommand[] = [];
    const cleared: string[] = [];
    await (workflow(sent, cleared) as unknown as { takeOverOrphans(): Promise<void> }).takeOverOrphans();
    expect(cleared).toEqual(['/repo-1 repo-1 rp-20261129080000-1a2b3c4d']);
    expect(sent.map((c) => [c.syncJobId, c.decision])).toEqual([
      [
        'job-gone',
        {
          kind: 'failRun',
          result: { runId: 'run-1', reason: 'left during the copy of rp-20261129080000-1a2b3c4d by hub process gone-hub, which stopped and did not come back', restorePointId: 'rp-20261129080000-1a2b3c4d', synced: ['rp-20261129070000-0a0b0c0d'], bytesReceived: 42 },
        },
      ],
    ]);
  });
});
