import { SyncedInRunQuery } from '../restore-points/queries/synced-in-run.query';
import { SyncJobCommand } from './jobs/commands/sync-job.command';
import type { SyncJobState } from './jobs/sync-job.aggregate';
import { ListSyncJobsQuery } from './queries/sync-jobs.query';
import { SyncWorkflow } from './sync.workflow';

/**
 * What another hub takes over of a gone hub process's sync runs. The read models, the event store, the liveness
 * check and the command bus are faked; the workflow's own decisions are what is tested, including another hub or
 * the owner itself ending the run between this hub's look and its takeover.
 */
describe("a gone hub process's sync runs, taken over", () => {
  const POINT = 'rp-20261129080000-1a2b3c4d';
  const copying = (runId: string, syncJobId: string) => ({ runId, restorePointId: POINT, vmId: 'vm1', files: ['vm1/vda/x.qcow2'], exportId: 'e1', syncJobId });
  const runOf = (runId: string, hubInstance: string, syncJobId: string, point = true): SyncJobState => ({
    definition: null,
    running: { runId, hubInstance, point: point ? copying(runId, syncJobId) : null } as never,
    unfinished: point ? copying(runId, syncJobId) : null,
  });
  const ended = (before: SyncJobState): SyncJobState => ({ ...before, running: null });

  /**
   * `states`: each job's state as successive loads read it (the last one stays); after a failRun the run reads ended. `recorded`: whether a failRun appends (false: another hub recorded it first).
   */
  function workflow(states: Record<string, SyncJobState[]>, sent: SyncJobCommand[], cleared: string[], recorded = true): SyncWorkflow {
    const none = null as never;
    const gateway = {
      execute: async (c: SyncJobCommand) => {
        sent.push(c);
        const seq = states[c.syncJobId];
        // recorded or not (another hub's failure came first), the run has ended
        seq.splice(0, seq.length, ended(seq[0]));
        return { eventIds: recorded ? ['e2'] : [], position: '1' };
      },
    };
    const queries = {
      execute: async (q: unknown) => {
        if (q instanceof ListSyncJobsQuery) return Object.entries(states).map(([syncJobId, seq]) => ({ syncJobId, repositoryId: 'repo-1', lastRun: { status: seq[0].running ? 'running' : 'completed' } }));
        if (q instanceof SyncedInRunQuery) return q.runId === 'run-1' ? [{ restorePointId: 'rp-20261129070000-0a0b0c0d', bytesReceived: 42 }] : [];
        throw new Error(`unexpected query ${String(q)}`);
      },
    };
    const aggregates = {
      load: async (stream: string) => {
        const seq = states[stream.replace(/^sync-job-/, '')];
        return { state: seq.length > 1 ? seq.shift()! : seq[0] };
      },
    };
    const repositories = { usable: async () => ({ root: '/repo-1' }) };
    const projections = { waitForCaughtUp: async () => undefined };
    const config = { goneHubAfterMs: 0 };
    const created = new SyncWorkflow(config as never, 'this-hub', gateway as never, queries as never, aggregates as never, repositories as never, none, none, none, projections as never, none, none, { gone: async (id: string) => id === 'gone-hub' } as never, none);
    (created as unknown as { clearUnfinishedFiles: (root: string, repositoryId: string, u: { restorePointId: string }) => Promise<void> }).clearUnfinishedFiles = async (root, repositoryId, u) => {
      cleared.push(`${root} ${repositoryId} ${u.restorePointId}`);
    };
    return created;
  }
  const takeOver = (w: SyncWorkflow) => (w as unknown as { takeOverOrphans(): Promise<void> }).takeOverOrphans();
  const failures = (sent: SyncJobCommand[]) => sent.map((c) => [c.syncJobId, c.decision]);

  it("ends the run of the gone process, then removes its unfinished point's files, the points it recorded kept in its figures; leaves a live hub's and this process's own", async () => {
    const sent: SyncJobCommand[] = [];
    const cleared: string[] = [];
    const states = {
      'job-gone': [runOf('run-1', 'gone-hub', 'job-gone')],
      'job-alive': [runOf('run-2', 'live-hub', 'job-alive', false)],
      'job-mine': [runOf('run-3', 'this-hub', 'job-mine', false)],
      'job-idle': [{ definition: null, running: null, unfinished: null }],
    };
    await takeOver(workflow(states, sent, cleared));
    expect(failures(sent)).toEqual([
      [
        'job-gone',
        {
          kind: 'failRun',
          result: { runId: 'run-1', reason: `left during the copy of ${POINT} by hub process gone-hub, which stopped and did not come back`, restorePointId: POINT, synced: ['rp-20261129070000-0a0b0c0d'], bytesReceived: 42 },
        },
      ],
    ]);
    expect(cleared).toEqual([`/repo-1 repo-1 ${POINT}`]);
  });

  it('leaves a run that ended between its look and the takeover, by its owner come back or by another hub', async () => {
    const sent: SyncJobCommand[] = [];
    const cleared: string[] = [];
    // ended, and the job already runs again
    await takeOver(workflow({ 'job-gone': [runOf('run-1', 'gone-hub', 'job-gone'), runOf('run-2', 'live-hub', 'job-gone')] }, sent, cleared));
    expect({ sent: sent.length, cleared }).toEqual({ sent: 0, cleared: [] });
  });

  it("removes nothing when another hub's failure of the run was recorded first, nor once another run has started (it removes them itself)", async () => {
    const sent: SyncJobCommand[] = [];
    const cleared: string[] = [];
    await takeOver(workflow({ 'job-gone': [runOf('run-1', 'gone-hub', 'job-gone')] }, sent, cleared, false));
    expect({ sent: sent.length, cleared }).toEqual({ sent: 1, cleared: [] });

    const restarted = runOf('run-9', 'live-hub', 'job-gone');
    const states = { 'job-gone': [runOf('run-1', 'gone-hub', 'job-gone'), runOf('run-1', 'gone-hub', 'job-gone'), restarted] };
    // the failRun of this fake leaves the run ended; the load after it reads the new run
    const w = workflow(states, (sent.length = 0, sent), cleared);
    (w as unknown as { gateway: { execute: (c: SyncJobCommand) => Promise<unknown> } }).gateway.execute = async (c: SyncJobCommand) => {
      sent.push(c);
      states['job-gone'] = [restarted];
      return { eventIds: ['e2'], position: '1' };
    };
    await takeOver(w);
    expect({ sent: sent.length, cleared }).toEqual({ sent: 1, cleared: [] });
  });
});
