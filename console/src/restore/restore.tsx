import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { DiskProgress } from '../jobs/disk-progress';
import { time } from '../format';
import { type LiveEvent, useLive } from '../live';
import { CorrelationLink, type Notice, NoticeLine, correlationOf } from '../notice';
import { onLink } from '../router';
import { session } from '../session';
import { Badge, type Tone } from '../ui/badge';
import { Failure, type Refusal, refusalOf } from '../ui/failure';

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
  stalled: string | null;
  error: string | null;
  drill: { passed: boolean; bootMs: number | null; reason: string | null } | null;
  correlationId: string;
  requestedAt: string;
  finishedAt: string | null;
}

const TONE: Record<Restore['status'], Tone> = { running: 'idle', completed: 'ok', failed: 'bad', cancelled: 'warn' };

/** How it ended, in one sentence an operator acts on: the VM they got back and whether it runs, or why not. */
function RestoreResult({ restore }: { restore: Restore }) {
  if (restore.status === 'failed') return <p class="error result" role="alert" data-result="failed">The restore failed: {restore.error}</p>;
  if (restore.status === 'cancelled') return <p class="result" role="status" data-result="cancelled">The restore was cancelled; what it had made on the host was removed.</p>;
  if (restore.status === 'running' && restore.stalled && restore.domain)
    return (
      <p class="error result" role="alert" data-result="stalled" data-domain={restore.domain.name}>
        <Badge tone="warn" text="copy waiting" /> VM <strong>{restore.domain.name}</strong> is kept, still reading from the backup, but its disks cannot be copied to the host: {restore.stalled}. The copy goes on by itself once that is fixed; cancelling the restore removes the VM and what its guest wrote.
      </p>
    );
  if (restore.status === 'running' && restore.domain?.started)
    return (
      <p class="result" role="status" data-result="running" data-domain={restore.domain.name}>
        <Badge tone="ok" text="running" /> VM <strong>{restore.domain.name}</strong> runs from the backup while its disks are copied to the host.
      </p>
    );
  if (restore.status !== 'completed') return null;
  if (restore.drill) return <p class="result" role="status" data-result="drill">{restore.drill.passed ? `The drill passed: the copy booted in ${restore.drill.bootMs} ms and was removed.` : `The drill failed: ${restore.drill.reason}`}</p>;
  if (!restore.domain) return <p class="result" role="status" data-result="completed">The restore completed.</p>;
  return (
    <p class="result" role="status" data-result="completed" data-domain={restore.domain.name} data-started={String(restore.domain.started)}>
      <Badge tone="ok" text={restore.domain.started ? 'running' : 'defined'} /> VM <strong>{restore.domain.name}</strong>{' '}
      {restore.domain.started ? 'is running on its host.' : 'is defined on its host, not started.'}
    </p>
  );
}

/** One restore as it runs: its disks, its phase, and how it ended. */
export function RestorePage({ restoreId }: { restoreId: string }) {
  const [restore, setRestore] = useState<Restore | null>(null);
  const [error, setError] = useState<Refusal | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);

  async function load(): Promise<Restore | null> {
    const answer = await api.GET('/api/v1/restores/{restoreId}', { params: { path: { restoreId } } });
    const refused = refusalOf(answer);
    if (refused) return (setError(refused), null);
    const data = answer.data;
    setRestore(data as unknown as Restore);
    return data as unknown as Restore;
  }
  const [vmName, setVmName] = useState<string | null>(null);
  useEffect(() => void load(), [restoreId]);
  useEffect(() => {
    if (restore?.vmId) void api.GET('/api/v1/vms').then(({ data }) => setVmName((data as unknown as { vmId: string; name: string | null }[] | undefined)?.find((v) => v.vmId === restore.vmId)?.name ?? null));
  }, [restore?.vmId]);
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

  if (error) return <Failure title="Restore" refusal={error} missing={`No restore ${restoreId}`} />;
  if (!restore) return <main><h1>Restore {restoreId}</h1><p aria-busy="true">Loading…</p></main>;
  const what = restore.target.kind === 'drill' ? 'Recovery drill' : restore.mode === 'instant' ? 'Instant recovery' : restore.target.kind === 'replace' ? 'Restore into the original VM' : 'Restore as a new VM';
  return (
    <main data-restore={restore.restoreId} data-status={restore.status} data-phase={restore.phase}>
      <h1>{what} of {vmName ?? restore.vmId}</h1>
      <NoticeLine notice={notice} />
      <dl class="facts">
        <dt>Restore point</dt><dd><a href={`/console/vms/${encodeURIComponent(restore.vmId)}#${restore.restorePointId}`} onClick={onLink}>{restore.restorePointId}</a></dd>
        <dt>Status</dt><dd class="status"><Badge tone={TONE[restore.status]} text={restore.status} state={restore.status} /></dd>
        <dt>Phase</dt><dd>{restore.phase}</dd>
        {restore.target.name && <><dt>New VM</dt><dd>{restore.target.name}</dd></>}
        {restore.domain && <><dt>Domain</dt><dd>{restore.domain.name} ({restore.domain.started ? 'running' : 'defined, not started'})</dd></>}
        {restore.drill && <><dt>Drill</dt><dd>{restore.drill.passed ? `passed, booted in ${restore.drill.bootMs} ms` : `failed: ${restore.drill.reason}`}</dd></>}
        <dt>Requested</dt><dd>{time(restore.requestedAt)}</dd>
        <dt>Finished</dt><dd>{time(restore.finishedAt)}</dd>
        <dt>Correlation id</dt><dd><CorrelationLink id={restore.correlationId} /></dd>
      </dl>
      <RestoreResult restore={restore} />
      {restore.disks.map((d) => <DiskProgress key={d.diskId} jobId={restore.restoreId} disk={{ ...d, bytesWritten: d.bytesDone }} />)}
      {restore.status === 'running' && session.mayOperate() && <button type="button" onClick={() => void cancel()}>Cancel the restore</button>}
    </main>
  );
}
