import { fullBackupRequest } from '../../test/fixtures/agent/start-request';
import type { NbdClient } from '../nbd-protocol';
import type { AgentReport, StartRequest } from '../wire/backup-protocol';
import { BackupRunner, RunnerDeps } from './backup-runner';
import type { BackupSource } from './sources/backup-source';

const request = fullBackupRequest(['disk0', 'disk1']);

/** A runner whose source fails at the snapshot (after asserting what it was given), so no NBD data path is needed. */
function runner(connectTarget: RunnerDeps['connectTarget'], openSnapshot: () => Promise<never>) {
  const reports: AgentReport[] = [];
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const source = {
    prepareBackup: async () => ({ vmId: request.vmId, newPointId: request.restorePointId, sincePointId: null, mode: 'full', disks: [], bitmaps: {} }),
    openSnapshot,
    completeBackup: async () => undefined,
  } as unknown as BackupSource;
  const backupRunner = new BackupRunner({
    source,
    connectTarget,
    report: async (_job, report) => {
      reports.push(report);
      if (report.type === 'failed') finished();
    },
    uploadDigests: async () => undefined,
    knownDigests: async () => Promise.reject(new Error('no target is known')),
    uploadConfiguration: async () => undefined,
    log: () => undefined,
  });
  // finished: the failure reported and everything of the job closed (the runner forgets a job last)
  const ended = done.then(async () => {
    while (backupRunner.isRunning(request.jobId)) await new Promise((r) => setTimeout(r, 1));
  });
  return { backupRunner, reports, done: ended };
}

describe('BackupRunner', () => {
  it("connects the disks' targets while the snapshot is taken, and closes them when the snapshot fails", async () => {
    const connected: string[] = [];
    let closed = 0;
    const connectTarget = async (nbd: StartRequest['disks'][number]['nbd']) => {
      connected.push(nbd.exportName);
      return { close: async () => void closed++ } as unknown as NbdClient;
    };
    let seenAtSnapshot: string[] = [];
    const { backupRunner, reports, done } = runner(connectTarget, async () => {
      seenAtSnapshot = [...connected];
      throw new Error('no space for the overlay');
    });
    backupRunner.start(request);
    await done;
    // both disks are copied at once, so both targets are opened early; none is opened after the failure
    expect(seenAtSnapshot).toEqual(['disk0', 'disk1']);
    expect(connected).toEqual(['disk0', 'disk1']);
    expect(closed).toBe(2);
    expect(reports).toEqual([{ type: 'failed', reason: 'no space for the overlay' }]);
  });

  it("reports the snapshot's failure when the early connection failed too, whose rejection is handled at once", async () => {
    // Jest does not hand the process's unhandledRejection events to a test, so the test watches the promise
    // itself: a handler must be on it before the snapshot starts, long before the runner would await it.
    let handled = false;
    let handledAtSnapshot: boolean | undefined;
    const { backupRunner, reports, done } = runner(
      () => {
        const failing = Promise.reject(new Error('TLS with the NBD server failed'));
        const then = failing.then.bind(failing);
        failing.then = ((onFulfilled, onRejected) => {
          if (onRejected) handled = true;
          return then(onFulfilled, onRejected);
        }) as typeof failing.then;
        return failing as unknown as Promise<NbdClient>;
      },
      async () => {
        handledAtSnapshot = handled;
        throw new Error('snapshot failed');
      },
    );
    backupRunner.start(request);
    await done;
    expect(handledAtSnapshot).toBe(true);
    expect(reports).toEqual([{ type: 'failed', reason: 'snapshot failed' }]);
  });
});
