import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { onLink } from '../router';
import { correlationOf, type Notice, NoticeLine } from '../notice';
import { session } from '../session';

type Status = 'protected' | 'at-risk' | 'unprotected';
interface VmProtection {
  vmId: string;
  name: string;
  status: Status;
  rpoHours: number | null;
  failuresInRow: number;
  lastRestorePoint: { restorePointId: string; repositoryId: string; createdAt: string; ageHours: number } | null;
}
interface Job {
  jobId: string;
  vmId: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  phase: string;
  requestedAt: string;
}

/** Breaches first: a failed last backup, then at risk (oldest point first), then unprotected, then protected. */
export function rank(vm: VmProtection): [number, number] {
  const order = vm.failuresInRow > 0 ? 0 : vm.status === 'at-risk' ? 1 : vm.status === 'unprotected' ? 2 : 3;
  return [order, -(vm.lastRestorePoint?.ageHours ?? 0)];
}

const label = (vm: VmProtection) => (vm.failuresInRow > 0 ? 'last backup failed' : vm.status === 'at-risk' ? 'at risk' : vm.status);
const age = (hours: number) => (hours < 1 ? `${Math.round(hours * 60)} min` : hours < 48 ? `${hours.toFixed(1)} h` : `${(hours / 24).toFixed(1)} d`);

/** The page an operator opens each morning: what is protected and what is not, and what runs now. */
export function Overview() {
  const [vms, setVms] = useState<VmProtection[] | null>(null);
  const [jobs, setJobs] = useState<Job[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);

  async function load() {
    const [report, recent] = await Promise.all([api.GET('/api/v1/reports/protection'), api.GET('/api/v1/backups', { params: { query: { limit: 500 } } })]);
    if (report.error || recent.error) return setError(problem(report.error ?? recent.error));
    setVms([...(report.data as unknown as { vms: VmProtection[] }).vms].sort((a, b) => (rank(a)[0] - rank(b)[0]) || (rank(a)[1] - rank(b)[1])));
    setJobs((recent.data as unknown as { jobs: Job[] }).jobs);
  }
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), 5000);
    return () => clearInterval(timer);
  }, []);

  async function backUp(vm: VmProtection) {
    const { data, error: refused, response } = await api.POST('/api/v1/backups', { body: { vmId: vm.vmId, repositoryId: vm.lastRestorePoint!.repositoryId } as never });
    setNotice(refused ? { text: `${vm.name}: ${problem(refused)}`, alert: true } : { text: `${vm.name}: backup job ${(data as unknown as { jobId: string }).jobId} requested`, correlationId: correlationOf(response) });
    void load();
  }

  if (error) return <p role="alert" class="error">{error}</p>;
  if (!vms) return <p aria-busy="true">Loading…</p>;
  const day = Date.now() - 24 * 3600_000;
  const lastDay = jobs.filter((j) => Date.parse(j.requestedAt) >= day);
  const count = (s: Job['status']) => lastDay.filter((j) => j.status === s).length;
  const running = jobs.filter((j) => j.status === 'running' || j.status === 'queued');
  return (
    <main>
      <h1>Protection</h1>
      <h2>Last 24 hours</h2>
      <section aria-label="last 24 hours" class="counts">
        <p><strong data-count="completed">{count('completed')}</strong> completed</p>
        <p><strong data-count="failed">{count('failed')}</strong> failed</p>
        <p><strong data-count="running">{running.length}</strong> running or queued now</p>
      </section>
      <NoticeLine notice={notice} />
      <table>
        <caption>Virtual machines, breaches first</caption>
        <thead>
          <tr><th scope="col">VM</th><th scope="col">State</th><th scope="col">Newest point</th><th scope="col">RPO</th><th scope="col">Actions</th></tr>
        </thead>
        <tbody>
          {vms.map((vm) => (
            <tr key={vm.vmId} data-vm={vm.vmId} class={`state-${vm.status}`}>
              <th scope="row"><a href={`/console/vms/${encodeURIComponent(vm.vmId)}`} onClick={onLink}>{vm.name}</a></th>
              <td data-state={vm.failuresInRow > 0 ? 'failed' : vm.status}>{label(vm)}</td>
              <td>{vm.lastRestorePoint ? `${age(vm.lastRestorePoint.ageHours)} ago` : 'none'}</td>
              <td>{vm.rpoHours === null ? '—' : `${vm.rpoHours} h`}</td>
              <td>{vm.lastRestorePoint && session.mayOperate() && <button type="button" onClick={() => void backUp(vm)}>Back up now</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Running jobs</h2>
      {running.length ? (
        <ul>{running.map((j) => <li key={j.jobId}>{j.vmId}: {j.status} ({j.phase})</li>)}</ul>
      ) : (
        <p>No job is running.</p>
      )}
    </main>
  );
}
