import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { DiskProgress } from '../jobs/disk-progress';
import { time } from '../format';
import { type LiveEvent, useLive } from '../live';
import { CorrelationLink, type Notice, NoticeLine, correlationOf } from '../notice';
import { onLink } from '../router';
import { session } from '../session';

interface Restore {
  restoreId: string;
  restorePointId: string;
  vmId: string;
  mode: 'full' | 'instant';
  target: { kind: string; name?: string; vmId?: string };
  status: 'running' | 'completed' | 'failed' | 'cancelled';
  phase: string;
  disks: { diskId: string; bytesDone: number; bytesPlanned: number; rate: number; done: boolean; verifiedBlocks: number }[];
  domain: { name: string; uuid: string; started: boolean } | null;
  error: string | null;
  drill: { passed: boolean; bootMs: number | null; reason: string | null } | null;
  correlationId: string;
  requestedAt: string;
  finishedAt: string | null;
}

/** One restore as it runs: its disks, its phase, and how it ended. */
export function RestorePage({ restoreId }: { restoreId: string }) {
  const [restore, setRestore] = useState<Restore | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);

  async function load(): Promise<Restore | null> {
    const { data, error: refused } = await api.GET('/api/v1/restores/{restoreId}', { params: { path: { restoreId } } });
    if (refused) return (setError(problem(refused)), null);
    setRestore(data as unknown as Restore);
    return data as unknown as Restore;
  }
  useEffect(() => void load(), [restoreId]);
  // the restores read model follows the events a moment later: ask until it shows what the event said
  useLive(async (e: LiveEvent) => {
    if (e.type !== 'ready' && e.streamId !== `vm-restore-${restoreId}`) return;
    for (let i = 0; i < 20; i++) {
      const r = await load();
      if (!r || r.status !== 'running' || !/Completed|Failed|Cancelled|DrillPassed|DrillFailed/.test(e.type)) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });

  async function cancel() {
    const { error: refused, response } = await api.POST('/api/v1/restores/{restoreId}/cancel', { params: { path: { restoreId } } });
    setNotice(refused ? { text: `cancel refused: ${problem(refused)}`, alert: true } : { text: 'cancel requested', correlationId: correlationOf(response) });
  }

  if (error) return <main><h1>Restore {restoreId}</h1><p role="alert" class="error">{error}</p></main>;
  if (!restore) return <main><h1>Restore {restoreId}</h1><p aria-busy="true">Loading…</p></main>;
  const what = restore.target.kind === 'drill' ? 'Recovery drill' : restore.mode === 'instant' ? 'Instant recovery' : restore.target.kind === 'replace' ? 'Restore into the original VM' : 'Restore as a new VM';
  return (
    <main data-restore={restore.restoreId} data-status={restore.status} data-phase={restore.phase}>
      <h1>{what} of {restore.vmId}</h1>
      <NoticeLine notice={notice} />
      <dl class="facts">
        <dt>Restore point</dt><dd><a href={`/console/vms/${encodeURIComponent(restore.vmId)}#${restore.restorePointId}`} onClick={onLink}>{restore.restorePointId}</a></dd>
        <dt>Status</dt><dd class="status">{restore.status}</dd>
        <dt>Phase</dt><dd>{restore.phase}</dd>
        {restore.target.name && <><dt>New VM</dt><dd>{restore.target.name}</dd></>}
        {restore.domain && <><dt>Domain</dt><dd>{restore.domain.name} ({restore.domain.started ? 'running' : 'defined, not started'})</dd></>}
        {restore.drill && <><dt>Drill</dt><dd>{restore.drill.passed ? `passed, booted in ${restore.drill.bootMs} ms` : `failed: ${restore.drill.reason}`}</dd></>}
        <dt>Requested</dt><dd>{time(restore.requestedAt)}</dd>
        <dt>Finished</dt><dd>{time(restore.finishedAt)}</dd>
        <dt>Correlation id</dt><dd><CorrelationLink id={restore.correlationId} /></dd>
      </dl>
      {restore.error && <p class="error" role="alert">failed: {restore.error}</p>}
      {restore.disks.map((d) => <DiskProgress key={d.diskId} jobId={restore.restoreId} disk={{ ...d, bytesWritten: d.bytesDone }} />)}
      {restore.status === 'running' && session.mayOperate() && <button type="button" onClick={() => void cancel()}>Cancel the restore</button>}
    </main>
  );
}
