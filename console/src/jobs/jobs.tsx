import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { time } from '../format';
import { eventsAfter, type LiveEvent, useLive } from '../live';
import { onLink } from '../router';
import { correlationOf, type Notice, NoticeLine } from '../notice';
import { session } from '../session';
import { DiskProgress } from './disk-progress';
import { applyToList, type JobView, upToDate } from './job-view';

export async function cancelJob(jobId: string): Promise<Notice> {
  const { error, response } = await api.POST('/api/v1/backups/{jobId}/cancel', { params: { path: { jobId } } });
  return error ? { text: `cancel refused: ${problem(error)}`, alert: true } : { text: `cancel of job ${jobId} requested`, correlationId: correlationOf(response) };
}

/** Running, queued and finished jobs; their progress moves with the tab's live stream, without a reload. */
export function Jobs() {
  const [jobs, setJobs] = useState<JobView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);

  async function load() {
    const { data, error: refused } = await api.GET('/api/v1/backups', { params: { query: { limit: 100 } } });
    if (refused) return setError(problem(refused));
    const { jobs: listed, asOf } = data!;
    setJobs(upToDate(listed, asOf, eventsAfter(asOf)));
  }
  useEffect(() => void load(), []);
  useLive((e: LiveEvent) => {
    // a new stream may start after what the listing shows: list again, as of where the stream now stands
    if (e.type === 'ready') return void load();
    setJobs((all) => all && applyToList(all, e));
  });

  if (error) return <main><h1>Jobs</h1><p role="alert" class="error">{error}</p></main>;
  if (!jobs) return <main><h1>Jobs</h1><p aria-busy="true">Loading…</p></main>;
  const groups: [string, JobView[]][] = [
    ['Running', jobs.filter((j) => j.status === 'running')],
    ['Queued', jobs.filter((j) => j.status === 'queued')],
    ['Finished', jobs.filter((j) => j.status === 'completed' || j.status === 'failed')],
  ];
  return (
    <main>
      <h1>Jobs</h1>
      <NoticeLine notice={notice} />
      {groups.map(([title, list]) => (
        <section key={title} aria-labelledby={`jobs-${title}`}>
          <h2 id={`jobs-${title}`}>{title}</h2>
          {list.length ? (
            <ul class="jobs">
              {list.map((j) => (
                <li key={j.jobId} data-job={j.jobId} data-status={j.status} data-phase={j.phase}>
                  <p>
                    <a href={`/console/jobs/${j.jobId}`} onClick={onLink}>{j.vmId}: {j.type ?? 'backup'}</a> · <span class="phase">{j.phase}</span> · requested {time(j.requestedAt)}
                    {j.cancelRequested && j.status === 'running' && ' · cancelling'}
                  </p>
                  {j.status === 'running' && j.disks.map((d) => <DiskProgress key={d.diskId} jobId={j.jobId} disk={d} />)}
                  {j.error && <p class="error">failed: {j.error}</p>}
                  {j.status === 'completed' && j.restorePointId && (
                    <p>restore point <a href={`/console/vms/${encodeURIComponent(j.vmId)}#${j.restorePointId}`} onClick={onLink} data-point={j.restorePointId}>{j.restorePointId}</a></p>
                  )}
                  {(j.status === 'running' || j.status === 'queued') && session.mayOperate() && !j.cancelRequested && (
                    <button type="button" onClick={async () => setNotice(await cancelJob(j.jobId))}>Cancel {j.vmId}</button>
                  )}
                </li>
              ))}
            </ul>
          ) : (
            <p>None.</p>
          )}
        </section>
      ))}
    </main>
  );
}
