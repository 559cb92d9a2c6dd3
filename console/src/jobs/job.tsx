import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api/client';
import { bytes, duration, time } from '../format';
import { eventsAfter, type LiveEvent, useLive } from '../live';
import { onLink } from '../router';
import { CorrelationLink, type Notice, NoticeLine } from '../notice';
import { session } from '../session';
import { DiskProgress } from './disk-progress';
import type { StoryEvent } from '../audit/sentences';
import { jobLog } from './job-log';
import { Failure, type Refusal, refusalOf } from '../ui/failure';
import { bytesRead, cancelJob, JobBadge, jobSeconds, retryJob } from './jobs';
import { applyJobEvent, jobIdOf, type JobView, upToDate } from './job-view';

/** One job: its disks live, and its whole audit story (every event its correlation id carries, in any stream) as it grows. */
export function Job({ jobId }: { jobId: string }) {
  const [job, setJob] = useState<JobView | null>(null);
  const [story, setStory] = useState<StoryEvent[]>([]);
  const [correlationId, setCorrelationId] = useState<string | null>(null);
  const [error, setError] = useState<Refusal | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);
  const refetch = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  async function loadJob() {
    const answer = await api.GET('/api/v1/backups/{jobId}', { params: { path: { jobId } } });
    const refused = refusalOf(answer);
    if (refused) return setError(refused);
    const data = answer.data;
    const { asOf, ...listed } = data!;
    setJob(upToDate([listed], asOf, eventsAfter(asOf))[0]);
  }
  async function loadStory(correlation: string | null) {
    if (!correlation) {
      const first = await api.GET('/api/v1/audit/streams/{streamId}', { params: { path: { streamId: `backup-job-${jobId}` }, query: { limit: 1 } } });
      correlation = (first.data as unknown as { events: StoryEvent[] } | undefined)?.events[0]?.metadata.correlationId ?? null;
      if (!correlation) return;
      setCorrelationId(correlation);
    }
    const { data } = await api.GET('/api/v1/audit/correlations/{correlationId}', { params: { path: { correlationId: correlation } } });
    if (data) setStory((data as unknown as { events: StoryEvent[] }).events);
  }
  useEffect(() => {
    void loadJob();
    void loadStory(null);
    return () => clearTimeout(refetch.current);
  }, [jobId]);
  useLive((e: LiveEvent) => {
    if (e.type === 'ready') return void loadJob();
    if (jobIdOf(e) === jobId) setJob((j) => j && applyJobEvent(j, e));
    if (correlationId && e.correlationId === correlationId) {
      // events of the same story land in other streams too (ports, chains): ask once things settle
      clearTimeout(refetch.current);
      refetch.current = setTimeout(() => void loadStory(correlationId), 300);
    }
  });

  if (error) return <Failure title="Job" refusal={error} missing={`No backup job ${jobId}`} back={{ href: '/console/jobs', label: 'Back to Jobs' }} />;
  if (!job) return <main><h1>Job {jobId}</h1><p aria-busy="true">Loading…</p></main>;
  const seconds = jobSeconds(job);
  const read = bytesRead(job);
  return (
    <main data-job={job.jobId} data-status={job.status} data-phase={job.phase}>
      <p class="crumbs"><a href="/console/jobs" onClick={onLink}>All jobs</a></p>
      <h1>Backup of <a href={`/console/vms/${encodeURIComponent(job.vmId)}`} onClick={onLink}>{job.vmId}</a> <JobBadge job={job} /></h1>
      <NoticeLine notice={notice} />
      <dl class="summary">
        <div><dt>Type</dt><dd>{job.type ?? 'not decided yet'}</dd></div>
        <div><dt>Started</dt><dd>{time(job.startedAt ?? job.requestedAt)}</dd></div>
        <div><dt>Duration</dt><dd>{duration(seconds)}</dd></div>
        <div><dt>Read</dt><dd>{bytes(read)}</dd></div>
        <div><dt>Written</dt><dd>{bytes(job.bytesWritten)}</dd></div>
        <div><dt>Rate</dt><dd>{seconds > 0 && read > 0 ? `${bytes(read / seconds)}/s` : '—'}</dd></div>
        <div><dt>Audit</dt><dd data-correlation={correlationId ?? ''}>{correlationId ? <CorrelationLink id={correlationId} /> : '—'}</dd></div>
        {job.restorePointId && job.status === 'completed' && <div><dt>Restore point</dt><dd><a href={`/console/vms/${encodeURIComponent(job.vmId)}#${job.restorePointId}`} onClick={onLink} data-point={job.restorePointId}>{job.restorePointId}</a></dd></div>}
      </dl>
      {job.disksLeftOut.length > 0 && (
        <p class="warning" data-lacks>Not in this backup: {job.disksLeftOut.map((d) => `${d.diskId} (${d.reason})`).join('; ')}. Its agent cannot read them.</p>
      )}
      {job.error && <p class="error" role="alert">failed in {job.failedPhase ?? 'its run'}: {job.error}</p>}
      {job.status === 'running' && job.disks.map((d) => <DiskProgress key={d.diskId} jobId={job.jobId} disk={d} />)}
      <p class="actions">
        {(job.status === 'running' || job.status === 'queued') && session.mayOperate() && !job.cancelRequested && (
          <button type="button" onClick={async () => setNotice(await cancelJob(job.jobId))}>Cancel</button>
        )}
        {job.status === 'failed' && session.mayOperate() && <button type="button" class="primary" onClick={async () => setNotice(await retryJob(job, job.vmId))}>Retry</button>}
      </p>
      <h2>What happened</h2>
      <ol class="log">
        {jobLog(story).map((l) => (
          <li key={l.eventId} data-log={l.eventId} class={l.tone === 'bad' ? 'tone-bad' : undefined}>
            <time dateTime={l.time}>{new Date(l.time).toLocaleTimeString(undefined, { hourCycle: 'h23' })}</time> {l.text}
          </li>
        ))}
      </ol>
      <details class="technical">
        <summary>Technical events ({story.length})</summary>
        <table class="story">
          <caption>Every event caused under this job's correlation id, in the order the hub recorded them</caption>
          <thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Stream</th><th scope="col">Actor</th></tr></thead>
          <tbody>
            {story.map((e) => (
              <tr key={e.eventId} data-event={e.eventId}>
                <td>{time(e.time)}</td><td>{e.type}</td><td>{e.streamId}</td><td>{e.metadata.actor}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </main>
  );
}
