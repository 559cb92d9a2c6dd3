import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { Failure, type Refusal, refusalOf } from '../ui/failure';
import { ago, bytes, duration, time } from '../format';
import { eventsAfter, type LiveEvent, useLive } from '../live';
import { navigate, onLink, useRoute } from '../router';
import { correlationOf, type Notice, NoticeLine } from '../notice';
import { session } from '../session';
import { Badge, type Tone } from '../ui/badge';
import { DiskProgress } from './disk-progress';
import { applyToList, type JobView, upToDate } from './job-view';

export async function cancelJob(jobId: string): Promise<Notice> {
  const { error, response } = await api.POST('/api/v1/backups/{jobId}/cancel', { params: { path: { jobId } } });
  return error ? { text: `cancel refused: ${problem(error)}`, alert: true } : { text: `cancel of job ${jobId} requested`, correlationId: correlationOf(response) };
}

/** Asks for a backup; the notice names the job it made (its correlation id a link) or says the API's refusal. */
export async function requestBackup(vmName: string, body: { vmId: string; repositoryId: string; type?: string }, refusal = ''): Promise<Notice> {
  const { data, error, response } = await api.POST('/api/v1/backups', { body: body as never });
  return error ? { text: `${vmName}: ${refusal}${problem(error)}`, alert: true } : { text: `${vmName}: backup job ${(data as unknown as { jobId: string }).jobId} requested`, correlationId: correlationOf(response) };
}

/** A failed job asked for again as it was asked for: the same VM, repository and requested type. */
export const retryJob = (job: JobView, vmName: string) => requestBackup(vmName, { vmId: job.vmId, repositoryId: job.repositoryId, type: job.requestedType }, 'retry refused: ');

const TONE: Record<JobView['status'], Tone> = { completed: 'ok', failed: 'bad', running: 'idle', queued: 'idle' };
export function JobBadge({ job }: { job: JobView }) {
  return <Badge tone={TONE[job.status]} state={job.status} text={job.status === 'running' ? job.phase : job.status} />;
}

/** Seconds the job has run: to its end, or to now while it runs. */
export function jobSeconds(job: JobView, now = Date.now()): number {
  if (!job.startedAt) return NaN;
  return ((job.finishedAt ? Date.parse(job.finishedAt) : now) - Date.parse(job.startedAt)) / 1000;
}
/** What a job read from its disks: every disk's bytes done (what the agent copied, zeroes included). */
export const bytesRead = (job: JobView) => job.disks.reduce((n, d) => n + d.bytesDone, 0);

/** Which jobs a filter keeps; the filter lives in the address so a link (the overview's "failed") opens it. */
interface Filter {
  status: string;
  vm: string;
  since: string;
}
const SINCE: Record<string, number> = { '24h': 24, '7d': 24 * 7, '30d': 24 * 30 };
function kept(job: JobView, f: Filter, now: number): boolean {
  if (f.status && job.status !== f.status) return false;
  if (f.vm && job.vmId !== f.vm) return false;
  if (f.since && SINCE[f.since] && Date.parse(job.requestedAt) < now - SINCE[f.since] * 3600_000) return false;
  return true;
}

/** Every job as a row of a task log; running ones move with the tab's live stream, without a reload. */
export function Jobs() {
  const query = new URLSearchParams(useRoute().split('?')[1] ?? '');
  const filter: Filter = { status: query.get('status') ?? '', vm: query.get('vm') ?? '', since: query.get('since') ?? '' };
  const [jobs, setJobs] = useState<JobView[] | null>(null);
  const [names, setNames] = useState<Map<string, string>>(new Map());
  const [error, setError] = useState<Refusal | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);
  // the filters read the newest 500 jobs; the page draws a hundred at a time
  const [drawn, setDrawn] = useState(100);

  async function load() {
    const [answer, vms] = await Promise.all([api.GET('/api/v1/backups', { params: { query: { limit: 500 } } }), api.GET('/api/v1/vms')]);
    const refused = refusalOf(answer);
    if (refused) return setError(refused);
    const { jobs: listed, asOf } = answer.data!;
    setJobs(upToDate(listed, asOf, eventsAfter(asOf)));
    if (vms.data) setNames(new Map((vms.data as unknown as { vmId: string; name: string }[]).map((v) => [v.vmId, v.name])));
  }
  useEffect(() => void load(), []);
  useLive((e: LiveEvent) => {
    // a new stream may start after what the listing shows: list again, as of where the stream now stands
    if (e.type === 'ready') return void load();
    setJobs((all) => all && applyToList(all, e));
  });
  function setFilter(change: Partial<Filter>) {
    const next = { ...filter, ...change };
    const q = new URLSearchParams(Object.entries(next).filter(([, v]) => v));
    navigate(`/jobs${q.size ? `?${q}` : ''}`, true);
  }

  if (error) return <Failure title="Jobs" refusal={error} missing="No jobs" />;
  if (!jobs) return <main><h1>Jobs</h1><p aria-busy="true">Loading…</p></main>;
  const now = Date.now();
  const name = (vmId: string) => names.get(vmId) ?? vmId;
  const shown = jobs.filter((j) => kept(j, filter, now));
  const vmIds = [...new Set(jobs.map((j) => j.vmId))].sort((a, b) => name(a).localeCompare(name(b)));
  return (
    <main class="wide">
      <h1>Jobs</h1>
      <form class="filters" aria-label="filter jobs" onSubmit={(e) => e.preventDefault()}>
        <label>Status <select value={filter.status} onChange={(e) => setFilter({ status: (e.target as HTMLSelectElement).value })}>
          <option value="">any</option><option value="running">running</option><option value="queued">queued</option><option value="completed">completed</option><option value="failed">failed</option>
        </select></label>
        <label>VM <select value={filter.vm} onChange={(e) => setFilter({ vm: (e.target as HTMLSelectElement).value })}>
          <option value="">any</option>{vmIds.map((id) => <option key={id} value={id}>{name(id)}</option>)}
        </select></label>
        <label>Requested <select value={filter.since} onChange={(e) => setFilter({ since: (e.target as HTMLSelectElement).value })}>
          <option value="">any time</option><option value="24h">last 24 hours</option><option value="7d">last 7 days</option><option value="30d">last 30 days</option>
        </select></label>
        <span>{shown.length} of {jobs.length} jobs</span>
      </form>
      <NoticeLine notice={notice} />
      {shown.length ? (
        <table class="jobs-table">
          <caption class="visually-hidden">Backup jobs, newest first</caption>
          <thead>
            <tr><th scope="col">VM</th><th scope="col">Type</th><th scope="col">Started</th><th scope="col">Duration</th><th scope="col">Read</th><th scope="col">Written</th><th scope="col">Rate</th><th scope="col">Status</th><th scope="col">Actions</th></tr>
          </thead>
          {shown.slice(0, drawn).map((j) => {
            const seconds = jobSeconds(j, now);
            const read = bytesRead(j);
            return (
              <tbody key={j.jobId} data-job={j.jobId} data-status={j.status} data-phase={j.phase}>
                <tr>
                  <th scope="row"><a href={`/console/jobs/${j.jobId}`} onClick={onLink}>{name(j.vmId)}</a></th>
                  <td data-type>{j.type ?? (j.requestedType === 'auto' ? 'backup' : j.requestedType)}</td>
                  <td><time dateTime={j.startedAt ?? j.requestedAt}>{time(j.startedAt ?? j.requestedAt)}</time> <small class="ago">{ago(j.startedAt ?? j.requestedAt, now)}</small></td>
                  <td>{duration(seconds)}</td>
                  <td>{j.disks.length ? bytes(read) : '—'}</td>
                  <td>{j.status === 'completed' || j.bytesWritten ? bytes(j.bytesWritten) : '—'}</td>
                  <td>{seconds > 0 && read > 0 ? `${bytes(read / seconds)}/s` : '—'}</td>
                  <td><JobBadge job={j} />{j.cancelRequested && j.status === 'running' && ' cancelling'}</td>
                  <td class="actions">
                    {(j.status === 'running' || j.status === 'queued') && session.mayOperate() && !j.cancelRequested && (
                      <button type="button" onClick={async () => setNotice(await cancelJob(j.jobId))}>Cancel {name(j.vmId)}</button>
                    )}
                    {j.status === 'failed' && session.mayOperate() && (
                      <button type="button" onClick={async () => (setNotice(await retryJob(j, name(j.vmId))), void load())}>Retry {name(j.vmId)}</button>
                    )}
                  </td>
                </tr>
                {(j.status === 'running' || j.error || (j.status === 'completed' && j.restorePointId)) && (
                  <tr class="detail">
                    <td colSpan={9}>
                      {j.status === 'running' && j.disks.map((d) => <DiskProgress key={d.diskId} jobId={j.jobId} disk={d} />)}
                      {j.error && <p class="error">failed in {j.failedPhase ?? 'its run'}: {j.error}</p>}
                      {j.status === 'completed' && j.restorePointId && (
                        <p>
                          restore point <a href={`/console/vms/${encodeURIComponent(j.vmId)}#${j.restorePointId}`} onClick={onLink} data-point={j.restorePointId}>{j.restorePointId}</a>
                          {j.disks.filter((d) => d.bytesPlanned === 0).map((d) => <span key={d.diskId} data-unchanged={d.diskId}>; {d.diskId}: nothing changed, nothing to copy</span>)}
                        </p>
                      )}
                    </td>
                  </tr>
                )}
              </tbody>
            );
          })}
        </table>
      ) : null}
      {shown.length > drawn && <button type="button" onClick={() => setDrawn(drawn + 100)}>Show {Math.min(100, shown.length - drawn)} more of {shown.length - drawn}</button>}
      {shown.length ? null : (
        <p class="empty">{jobs.length ? 'No job matches these filters. ' : 'No backup has run yet: start one from the Protection page. '}{jobs.length > 0 && <a href="/console/jobs" onClick={onLink}>Show every job</a>}</p>
      )}
    </main>
  );
}
