import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { age } from '../format';
import { requestBackup } from '../jobs/jobs';
import { onLink, useRoute } from '../router';
import { type Notice, NoticeLine } from '../notice';
import { session } from '../session';
import { type Tone } from '../ui/badge';
import { StateBadge, type VmProtection } from '../vms/protection';
import { type DayCount, JobChart, lastDays } from './job-chart';
import { RepositoryUsage, type RepositorySpace } from './repository-usage';

interface Job {
  jobId: string;
  vmId: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  phase: string;
  requestedAt: string;
}

/** The tiles of the morning check, in the order an operator acts on them; each filters the table below. */
type Tile = 'at-risk' | 'failed' | 'never-backed-up' | 'no-policy' | 'protected';
const TILES: { tile: Tile; text: string; tone: Tone }[] = [
  { tile: 'at-risk', text: 'at risk', tone: 'bad' },
  { tile: 'failed', text: 'last backup failed', tone: 'bad' },
  { tile: 'never-backed-up', text: 'never backed up', tone: 'warn' },
  { tile: 'no-policy', text: 'backed up, no policy', tone: 'warn' },
  { tile: 'protected', text: 'protected', tone: 'ok' },
];
const inTile = (vm: VmProtection, tile: Tile) => (tile === 'failed' ? vm.failuresInRow > 0 : vm.state === tile);

/** Breaches first: a failed last backup, then at risk (longest overdue first), never backed up, no policy, protected. */
export function rank(vm: VmProtection): [number, number] {
  const order = vm.failuresInRow > 0 ? 0 : ['at-risk', 'never-backed-up', 'no-policy', 'protected'].indexOf(vm.state) + 1;
  return [order, -(vm.overdueHours ?? vm.lastRestorePoint?.ageHours ?? 0)];
}

/** A VM with a point is backed up into that point's repository; one without asks which repository first. */
function BackUpNow({ vm, repositories, done }: { vm: VmProtection; repositories: RepositorySpace[]; done: (n: Notice) => void }) {
  const [choosing, setChoosing] = useState(false);
  const [repositoryId, setRepositoryId] = useState('');
  async function start(target: string) {
    const notice = await requestBackup(vm.name, { vmId: vm.vmId, repositoryId: target });
    setChoosing(false);
    done(notice);
  }
  if (vm.lastRestorePoint) return <button type="button" onClick={() => void start(vm.lastRestorePoint!.repositoryId)}>Back up now</button>;
  if (!choosing) return <button type="button" aria-expanded="false" onClick={() => setChoosing(true)}>Back up now…</button>;
  if (!repositories.length) return <span>No repository yet: <a href="/console/infrastructure" onClick={onLink}>add one</a>.</span>;
  const chosen = repositoryId || repositories[0].repositoryId;
  return (
    <form class="inline-form" onSubmit={(e) => (e.preventDefault(), void start(chosen))}>
      <label>
        Repository{' '}
        <select value={chosen} onChange={(e) => setRepositoryId((e.target as HTMLSelectElement).value)}>
          {repositories.map((r) => <option key={r.repositoryId} value={r.repositoryId}>{r.name}</option>)}
        </select>
      </label>
      <button type="submit" class="primary">Start backup</button>
      <button type="button" onClick={() => setChoosing(false)}>Cancel</button>
    </form>
  );
}

/** The page an operator opens each morning: what needs them, how the last two weeks went, and what runs now. */
export function Overview() {
  const show = new URLSearchParams(useRoute().split('?')[1] ?? '').get('show') as Tile | null;
  const [vms, setVms] = useState<VmProtection[] | null>(null);
  const [jobs, setJobs] = useState<Job[]>([]);
  const [days, setDays] = useState<DayCount[]>([]);
  const [repositories, setRepositories] = useState<RepositorySpace[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);
  const chartDays = lastDays(14);

  async function load() {
    const from = new Date(`${chartDays[0]}T00:00:00`).toISOString();
    const timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const [report, recent, perDay, repos] = await Promise.all([
      api.GET('/api/v1/reports/protection'),
      api.GET('/api/v1/backups', { params: { query: { limit: 500 } } }),
      api.GET('/api/v1/reports/jobs', { params: { query: { from, to: new Date(Date.now() + 60_000).toISOString(), timezone } } }),
      api.GET('/api/v1/repositories'),
    ]);
    const failed = report.error ?? recent.error ?? perDay.error ?? repos.error;
    if (failed) return setError(problem(failed));
    setVms([...(report.data as unknown as { vms: VmProtection[] }).vms].sort((a, b) => rank(a)[0] - rank(b)[0] || rank(a)[1] - rank(b)[1]));
    setJobs((recent.data as unknown as { jobs: Job[] }).jobs);
    setDays((perDay.data as unknown as { days: DayCount[] }).days);
    setRepositories(repos.data as unknown as RepositorySpace[]);
  }
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), 5000);
    return () => clearInterval(timer);
  }, []);

  if (error) return <p role="alert" class="error">{error}</p>;
  if (!vms) return <p aria-busy="true">Loading…</p>;
  const day = Date.now() - 24 * 3600_000;
  const lastDay = jobs.filter((j) => Date.parse(j.requestedAt) >= day);
  const count = (s: Job['status']) => lastDay.filter((j) => j.status === s).length;
  const running = jobs.filter((j) => j.status === 'running' || j.status === 'queued');
  const worst = Math.max(0, ...vms.map((v) => v.overdueHours ?? 0));
  const listed = show ? vms.filter((vm) => inTile(vm, show)) : vms;
  return (
    <main class="overview">
      <h1>Protection</h1>
      <section aria-label="morning check" class="tiles">
        {TILES.map(({ tile, text, tone }) => {
          const n = vms.filter((vm) => inTile(vm, tile)).length;
          return (
            <a key={tile} href={`/console/${show === tile ? '' : `?show=${tile}`}`} onClick={onLink} class={`tile tile-${n ? tone : 'idle'}`} aria-current={show === tile ? 'true' : undefined} data-tile={tile}>
              <strong data-tile-count={tile}>{n}</strong> {text}
              {tile === 'at-risk' && n > 0 && <small>longest {age(worst)} over its RPO</small>}
            </a>
          );
        })}
      </section>
      <NoticeLine notice={notice} />
      <div class="overview-grid">
        <section aria-labelledby="vms-heading">
          <h2 id="vms-heading">{show ? `Virtual machines: ${TILES.find((t) => t.tile === show)?.text}` : 'Virtual machines, breaches first'}</h2>
          {listed.length ? (
            <table class="vms">
              <thead>
                <tr><th scope="col">VM</th><th scope="col">State</th><th scope="col">Newest point</th><th scope="col">RPO</th><th scope="col">Actions</th></tr>
              </thead>
              <tbody>
                {listed.map((vm) => (
                  <tr key={vm.vmId} data-vm={vm.vmId}>
                    <th scope="row"><a href={`/console/vms/${encodeURIComponent(vm.vmId)}`} onClick={onLink}>{vm.name}</a></th>
                    <td><StateBadge vm={vm} /></td>
                    <td>{vm.lastRestorePoint ? `${age(vm.lastRestorePoint.ageHours)} ago` : 'none'}</td>
                    <td>{vm.rpoHours === null ? '—' : `${vm.rpoHours} h`}</td>
                    <td>{session.mayOperate() && <BackUpNow vm={vm} repositories={repositories} done={(n) => (setNotice(n), void load())} />}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="empty">{vms.length ? 'No VM is in this state. ' : 'No VM yet: start an agent (docs/operations.md) and its VMs appear here. '}<a href="/console/" onClick={onLink}>Show every VM</a></p>
          )}
        </section>
        <aside aria-label="jobs">
          <h2>Last 24 hours</h2>
          <p class="counts">
            <span><strong data-count="completed">{count('completed')}</strong> completed</span>
            <a href="/console/jobs?status=failed&since=24h" onClick={onLink} class={count('failed') ? 'tone-bad' : undefined}><strong data-count="failed">{count('failed')}</strong> failed</a>
            <span><strong data-count="running">{running.length}</strong> running or queued now</span>
          </p>
          <JobChart days={chartDays} counts={days} />
          <h2>Repositories</h2>
          <RepositoryUsage repositories={repositories} />
          <h2>Running jobs</h2>
          {running.length ? (
            <ul>{running.map((j) => <li key={j.jobId}><a href={`/console/jobs/${j.jobId}`} onClick={onLink}>{vms.find((v) => v.vmId === j.vmId)?.name ?? j.vmId}</a>: {j.status} ({j.phase})</li>)}</ul>
          ) : (
            <p>No job is running.</p>
          )}
        </aside>
      </div>
    </main>
  );
}
