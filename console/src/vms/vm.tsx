import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { download } from '../download';
import { age, bytes, time } from '../format';
import { navigate, onLink } from '../router';
import { correlationOf, type Notice, NoticeLine } from '../notice';
import { ConsistencyBadge, IntegrityBadge, RestoreWizard } from '../restore/restore-wizard';
import { session } from '../session';
import { JobBadge } from '../jobs/jobs';
import type { JobView } from '../jobs/job-view';
import { Failure, type Refusal, refusalOf } from '../ui/failure';
import { StateBadge, type VmProtection } from './protection';

interface Damaged {
  diskId: string;
  offset: number;
  length: number;
  inPointId: string;
}
interface Point {
  restorePointId: string;
  repositoryId: string;
  type: 'full' | 'incremental';
  parentId: string | null;
  createdAt: string;
  status: string;
  disks: { diskId: string; virtualSize: number; fileBytes: number }[];
  integrity: 'verified' | 'unverified' | 'corrupt';
  verifiedAt: string | null;
  damaged: Damaged[];
  consistency: 'application' | 'crash' | null;
  consistencyReason: string | null;
  configuration: object | null;
  /** Disks of the VM holding data the point lacks: its agent could not read them. */
  disksLeftOut?: { diskId: string; reason: string }[];
}

interface NbdExport {
  exportId: string;
  restorePointId: string;
  disks: { diskId: string; uri: string; psk?: { identity: string; key: string } }[];
}

/** Each incremental under the point it was built on, oldest chain first. */
export function chainOrder(points: Point[]): { point: Point; depth: number }[] {
  const children = new Map<string | null, Point[]>();
  const ids = new Set(points.map((p) => p.restorePointId));
  for (const p of [...points].sort((a, b) => a.createdAt.localeCompare(b.createdAt))) {
    const parent = p.parentId && ids.has(p.parentId) ? p.parentId : null;
    children.set(parent, [...(children.get(parent) ?? []), p]);
  }
  const out: { point: Point; depth: number }[] = [];
  const walk = (parent: string | null, depth: number) => {
    for (const p of children.get(parent) ?? []) {
      out.push({ point: p, depth });
      walk(p.restorePointId, depth + 1);
    }
  };
  walk(null, 0);
  return out;
}

/** A point under a folded one, however deep, is not listed. */
function hiddenBy(point: Point, byId: Map<string, Point>, folded: Set<string>): boolean {
  for (let parent = point.parentId && byId.get(point.parentId); parent; parent = parent.parentId ? byId.get(parent.parentId) : undefined)
    if (folded.has(parent.restorePointId)) return true;
  return false;
}

/** A VM's restore points, every chain in every repository, with what can be done with each. */
export function Vm({ vmId }: { vmId: string }) {
  const [points, setPoints] = useState<Point[] | null>(null);
  const [repositories, setRepositories] = useState<Record<string, string>>({});
  const [error, setError] = useState<Refusal | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [restoring, setRestoring] = useState<Point | null>(null);
  const [exported, setExported] = useState<NbdExport | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [protection, setProtection] = useState<VmProtection | null>(null);
  const [lastJob, setLastJob] = useState<JobView | null>(null);
  const [folded, setFolded] = useState<Set<string>>(new Set());
  const toggle = (id: string) => setFolded((f) => (f.has(id) ? new Set([...f].filter((x) => x !== id)) : new Set([...f, id])));

  async function load() {
    const repos = api.GET('/api/v1/repositories');
    void api.GET('/api/v1/reports/protection').then(({ data }) => setProtection((data as unknown as { vms: VmProtection[] } | undefined)?.vms.find((v) => v.vmId === vmId) ?? null));
    void api.GET('/api/v1/backups', { params: { query: { vmId, limit: 1 } } }).then(({ data }) => setLastJob(data?.jobs[0] ?? null));
    const answer = await api.GET('/api/v1/vms/{vmId}/restore-points', { params: { path: { vmId } } });
    const refused = refusalOf(answer);
    if (refused) return setError(refused);
    const data = answer.data;
    setPoints(data as unknown as Point[]);
    setRepositories(Object.fromEntries((((await repos).data as unknown as { repositoryId: string; name: string }[] | undefined) ?? []).map((r) => [r.repositoryId, r.name])));
  }
  useEffect(() => void load(), [vmId]);
  useEffect(() => {
    // a link from a job names its point: bring it into view
    if (points && location.hash) document.getElementById(`point-${location.hash.slice(1)}`)?.scrollIntoView();
  }, [points]);

  async function act(point: Point, what: string, run: () => Promise<{ error?: unknown; response: Response }>, done: string) {
    setBusy(`${what} ${point.restorePointId}`);
    const { error: refused, response } = await run();
    setBusy(null);
    setNotice(refused ? { text: `${what} of ${point.restorePointId} refused: ${problem(refused)}`, alert: true, correlationId: correlationOf(response) } : { text: done, correlationId: correlationOf(response) });
    void load();
  }
  const verify = (p: Point) => act(p, 'Verify', () => api.POST('/api/v1/restore-points/{id}/verify', { params: { path: { id: p.restorePointId } } }), `${p.restorePointId} verified`);
  const remove = (p: Point) => (setConfirming(null), act(p, 'Delete', () => api.DELETE('/api/v1/restore-points/{id}', { params: { path: { id: p.restorePointId } } }), `${p.restorePointId} deleted`));
  async function browse(p: Point, diskId: string) {
    setBusy(`Mount ${p.restorePointId}`);
    const { data, error: refused } = await api.POST('/api/v1/restore/mounts', { body: { restorePointId: p.restorePointId, diskId } });
    setBusy(null);
    if (refused) return setNotice({ text: `Mounting ${p.restorePointId} ${diskId} refused: ${problem(refused)}`, alert: true });
    navigate(`/mounts/${(data as unknown as { mountId: string }).mountId}`);
  }
  async function image(p: Point, diskId: string) {
    const refused = await download(`/api/v1/restore-points/${encodeURIComponent(p.restorePointId)}/disks/${encodeURIComponent(diskId)}/image?format=qcow2`);
    setNotice(refused ? { text: `Download of ${diskId} refused: ${refused}`, alert: true } : { text: `Downloading ${diskId} of ${p.restorePointId} as qcow2` });
  }

  async function exportPoint(p: Point) {
    const { data, error: refused, response } = await api.POST('/api/v1/restore-points/{id}/exports', { params: { path: { id: p.restorePointId } }, body: { tls: true } as never });
    if (refused) return setNotice({ text: `Export of ${p.restorePointId} refused: ${problem(refused)}`, alert: true, correlationId: correlationOf(response) });
    setExported(data as unknown as NbdExport);
    setNotice({ text: `${p.restorePointId} exported over NBD with TLS`, correlationId: correlationOf(response) });
  }
  async function closeExport(exportId: string) {
    const { error: refused, response } = await api.DELETE('/api/v1/restore-point-exports/{exportId}', { params: { path: { exportId } } });
    setNotice(refused ? { text: `Closing the export refused: ${problem(refused)}`, alert: true } : { text: `Export ${exportId} closed`, correlationId: correlationOf(response) });
    if (!refused) setExported(null);
  }

  if (error) return <Failure title={vmId} refusal={error} missing={`No VM ${vmId}`} />;
  if (!points) return <main><h1>{vmId}</h1><p aria-busy="true">Loading…</p></main>;
  const operate = session.mayOperate();
  const name = protection?.name ?? vmId;
  const policies = protection?.policies ?? [];
  const byId = new Map(points.map((p) => [p.restorePointId, p]));
  const newest = points.reduce<Point | null>((n, p) => (!n || p.createdAt > n.createdAt ? p : n), null);
  return (
    <main class="wide">
      <p class="crumbs"><a href="/console/" onClick={onLink}>Protection</a></p>
      <h1>{name} {protection && <StateBadge vm={protection} />}</h1>
      <dl class="summary">
        <div><dt>Policies</dt><dd>{policies.length ? policies.map((p) => <a key={p.policyId} href={`/console/policies/${p.policyId}`} onClick={onLink}>{p.name}{p.enabled ? '' : ' (disabled)'} </a>) : 'none'}</dd></div>
        <div><dt>RPO</dt><dd>{protection?.rpoHours != null ? `${protection.rpoHours} h` : '—'}</dd></div>
        <div><dt>Newest point</dt><dd>{protection?.lastRestorePoint ? `${age(protection.lastRestorePoint.ageHours)} ago` : 'none'}</dd></div>
        <div><dt>Last job</dt><dd>{lastJob ? <a href={`/console/jobs/${lastJob.jobId}`} onClick={onLink}><JobBadge job={lastJob} /> {time(lastJob.requestedAt)}</a> : 'none'}</dd></div>
        <div><dt>Points</dt><dd data-points-total>{points.length}, {bytes(points.reduce((n, p) => n + p.disks.reduce((m, d) => m + d.fileBytes, 0), 0))}</dd></div>
      </dl>
      {operate && newest && (
        <p><button type="button" class="primary" data-restore-newest onClick={() => setRestoring(newest)}>Restore…</button></p>
      )}
      <NoticeLine notice={notice} />
      {busy && <p aria-busy="true">{busy}…</p>}
      {points.length === 0 ? (
        <p class="empty">No restore point yet: back this VM up from the <a href="/console/" onClick={onLink}>Protection</a> page.</p>
      ) : (
        <table class="points">
          <caption>Restore points: every chain, each incremental under the point it was built on</caption>
          <thead>
            <tr><th scope="col">Point</th><th scope="col">Type</th><th scope="col">Size</th><th scope="col">Consistency</th><th scope="col">Integrity</th><th scope="col">Repository</th>{operate && <th scope="col">Actions</th>}</tr>
          </thead>
          <tbody>
            {chainOrder(points).filter(({ point: p }) => !hiddenBy(p, byId, folded)).map(({ point: p, depth }) => (
              <tr key={p.restorePointId} id={`point-${p.restorePointId}`} data-point={p.restorePointId} data-depth={depth} data-integrity={p.integrity}>
                <th scope="row" style={{ paddingLeft: `${0.6 + depth * 1.5}rem` }}>
                  {points.some((c) => c.parentId === p.restorePointId) ? (
                    <button type="button" class="fold" aria-expanded={!folded.has(p.restorePointId)} aria-label={`${folded.has(p.restorePointId) ? 'Show' : 'Hide'} the points built on ${time(p.createdAt)}`} onClick={() => toggle(p.restorePointId)}>
                      {folded.has(p.restorePointId) ? '▸' : '▾'}
                    </button>
                  ) : depth > 0 && <span aria-hidden="true">↳ </span>}
                  {time(p.createdAt)}
                  <small class="point-id">{p.restorePointId}</small>
                </th>
                <td>{p.type}</td>
                <td>
                  {bytes(p.disks.reduce((n, d) => n + d.fileBytes, 0))}
                  {!!p.disksLeftOut?.length && <small class="lacks" title={p.disksLeftOut.map((d) => `${d.diskId}: ${d.reason}`).join('\n')}>lacks {p.disksLeftOut.map((d) => d.diskId).join(', ')}</small>}
                </td>
                <td title={p.consistencyReason ?? undefined}><ConsistencyBadge point={p} /></td>
                <td class={`integrity-${p.integrity}`}>
                  <IntegrityBadge point={p} />
                  {p.damaged.length > 0 && (
                    <ul class="damaged">
                      {p.damaged.map((d) => <li key={`${d.diskId}-${d.offset}`}>{d.diskId}: {bytes(d.length)} at offset {d.offset} (in {d.inPointId})</li>)}
                    </ul>
                  )}
                </td>
                <td>{repositories[p.repositoryId] ?? p.repositoryId}</td>
                {operate && (
                  <td class="actions">
                    <button type="button" disabled={!!busy} onClick={() => setRestoring(p)}>Restore…</button>
                    <details class="menu">
                      <summary>More</summary>
                      {/* a chosen action closes the menu, as a menu does */}
                      <div class="menu-items" onClick={(e) => (e.target as HTMLElement).closest('button') && ((e.currentTarget.parentElement as HTMLDetailsElement).open = false)}>
                        {p.disks.map((d) => <button key={`b-${d.diskId}`} type="button" disabled={!!busy} onClick={() => void browse(p, d.diskId)}>Browse files of {d.diskId}</button>)}
                        {p.disks.map((d) => <button key={`d-${d.diskId}`} type="button" onClick={() => void image(p, d.diskId)}>Download {d.diskId}</button>)}
                        <button type="button" disabled={!!busy || !!exported} onClick={() => void exportPoint(p)}>Export over NBD</button>
                        <button type="button" disabled={!!busy} onClick={() => void verify(p)}>Verify</button>
                        <button type="button" class="danger" disabled={!!busy} onClick={() => setConfirming(p.restorePointId)}>Delete…</button>
                      </div>
                    </details>
                    {confirming === p.restorePointId && (
                      <div class="confirm" role="group" aria-label={`delete ${p.restorePointId}`}>
                        <p>Delete the point of {time(p.createdAt)}? It goes to the recycle bin; an admin can bring it back until it is purged.</p>
                        <button type="button" class="danger" onClick={() => void remove(p)}>Delete the point</button>
                        <button type="button" onClick={() => setConfirming(null)}>Keep it</button>
                      </div>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {exported && (
        <section aria-labelledby="export-title" class="export" data-export={exported.exportId}>
          <h2 id="export-title">NBD export of {exported.restorePointId}</h2>
          <p>Read-only, TLS with a pre-shared key per disk. The keys are shown this once.</p>
          <table>
            <caption>Disks served</caption>
            <thead><tr><th scope="col">Disk</th><th scope="col">URI</th><th scope="col">PSK identity</th><th scope="col">PSK key</th></tr></thead>
            <tbody>
              {exported.disks.map((d) => (
                <tr key={d.diskId} data-export-disk={d.diskId}><th scope="row">{d.diskId}</th><td><code>{d.uri}</code></td><td><code>{d.psk?.identity}</code></td><td><code>{d.psk?.key}</code></td></tr>
              ))}
            </tbody>
          </table>
          <button type="button" onClick={() => void closeExport(exported.exportId)}>Close the export</button>
        </section>
      )}
      {restoring && (
        <RestoreWizard
          key={restoring.restorePointId}
          vmId={vmId}
          vmName={name}
          points={points}
          initial={restoring}
          onClose={() => setRestoring(null)}
          onBrowse={(p, diskId) => void browse(p as Point, diskId)}
          onImage={(p, diskId) => (setRestoring(null), void image(p as Point, diskId))}
        />
      )}
    </main>
  );
}
