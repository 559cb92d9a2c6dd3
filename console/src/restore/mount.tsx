import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { download } from '../download';
import { bytes, time } from '../format';
import { correlationOf, type Notice, NoticeLine } from '../notice';
import { navigate, onLink, useRoute } from '../router';
import { Failure, type Refusal, refusalOf } from '../ui/failure';

interface Volume {
  id: string;
  fsType: string | null;
  size: number;
  label: string | null;
  status: 'mounted' | 'unsupported' | 'failed';
  reason: string | null;
}
interface Mount {
  mountId: string;
  status: 'mounting' | 'ready' | 'failed' | 'released';
  restorePointId: string;
  vmId: string;
  diskId: string;
  volumes: Volume[];
  error: string | null;
  expiresAt: string | null;
  integrity: 'verified' | 'unverified' | 'corrupt';
  verifiedAt: string | null;
  damaged: { offset: number; length: number; inPointId: string }[];
}
interface Entry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mtime: string;
  linkTarget?: string;
}
type SortKey = 'name' | 'size' | 'mtime';

const PAGE = 100;
const join = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);

/** A mounted disk of a restore point: pick a volume, walk its folders, download a file or a folder, unmount. */
export function MountBrowser({ mountId }: { mountId: string }) {
  const query = new URLSearchParams(useRoute().split('?')[1] ?? '');
  const path = query.get('path') ?? '';
  const [mount, setMount] = useState<Mount | null>(null);
  const [entries, setEntries] = useState<Entry[] | null>(null);
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [next, setNext] = useState<string | null>(null);
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({ key: 'name', descending: false });
  const [error, setError] = useState<Refusal | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);

  const browsable = mount?.volumes.filter((v) => v.status === 'mounted') ?? [];
  const volume = query.get('volume') ?? browsable[0]?.id ?? null;
  const here = (to: { volume?: string | null; path?: string }) => `/mounts/${mountId}?${new URLSearchParams({ volume: to.volume ?? volume ?? '', path: to.path ?? '' })}`;

  async function loadMount(): Promise<Mount | null> {
    const answer = await api.GET('/api/v1/restore/mounts/{id}', { params: { path: { id: mountId } } });
    const refused = refusalOf(answer);
    if (refused) return (setError(refused), null);
    const data = answer.data;
    setMount(data as unknown as Mount);
    return data as unknown as Mount;
  }
  // a mount is being made for a few seconds after it is asked for
  useEffect(() => {
    let stop = false;
    void (async () => {
      for (let m = await loadMount(); !stop && m?.status === 'mounting'; m = await loadMount()) await new Promise((r) => setTimeout(r, 500));
    })();
    return () => void (stop = true);
  }, [mountId]);

  async function list(cursor: string | null) {
    if (!volume) return;
    const { data, error: refused } = await api.GET('/api/v1/restore/mounts/{id}/files', { params: { path: { id: mountId }, query: { volume, path, limit: PAGE, ...(cursor ? { cursor } : {}) } } });
    if (refused) return setNotice({ text: problem(refused), alert: true });
    const page = data as unknown as { entries: Entry[]; nextCursor: string | null };
    setEntries(page.entries);
    setNext(page.nextCursor);
  }
  useEffect(() => {
    if (mount?.status !== 'ready') return;
    setCursors([null]);
    void list(null);
  }, [mount?.status, volume, path]);

  async function get(entry: Entry) {
    const target = `/api/v1/restore/mounts/${mountId}/file?${new URLSearchParams({ volume: volume!, path: join(path, entry.name) })}`;
    const refused = await download(target);
    setNotice(refused ? { text: refused, alert: true } : { text: `Downloading ${join(path, entry.name)}` });
  }
  async function archive() {
    const target = `/api/v1/restore/mounts/${mountId}/archive?${new URLSearchParams({ volume: volume!, path, format: 'tar.gz' })}`;
    const refused = await download(target);
    setNotice(refused ? { text: refused, alert: true } : { text: `Downloading ${path || 'the whole volume'} as .tar.gz` });
  }
  async function unmount() {
    const { error: refused, response } = await api.DELETE('/api/v1/restore/mounts/{id}', { params: { path: { id: mountId } } });
    if (refused) return setNotice({ text: problem(refused), alert: true });
    setNotice({ text: 'Unmounted', correlationId: correlationOf(response) });
    await loadMount();
  }

  if (error) return <Failure title="File restore" refusal={error} missing={`No file restore ${mountId}`} />;
  if (!mount) return <main><h1>File restore</h1><p aria-busy="true">Loading…</p></main>;
  const sorted = [...(entries ?? [])].sort((a, b) => {
    const order = sort.key === 'name' ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : sort.key === 'size' ? a.size - b.size : a.mtime.localeCompare(b.mtime);
    return sort.descending ? -order : order;
  });
  const crumbs = path ? path.split('/') : [];
  const header = (key: SortKey, label: string) => (
    <th scope="col" aria-sort={sort.key === key ? (sort.descending ? 'descending' : 'ascending') : 'none'}>
      <button type="button" class="sort" onClick={() => setSort({ key, descending: sort.key === key ? !sort.descending : false })}>{label}</button>
    </th>
  );
  return (
    <main data-mount={mount.mountId} data-status={mount.status}>
      <h1>Files of {mount.vmId}, {mount.diskId}</h1>
      <dl class="facts">
        <dt>Restore point</dt><dd><a href={`/console/vms/${encodeURIComponent(mount.vmId)}#${mount.restorePointId}`} onClick={onLink}>{mount.restorePointId}</a></dd>
        <dt>Integrity</dt><dd class={`integrity-${mount.integrity}`} data-integrity={mount.integrity}>{mount.integrity}{mount.verifiedAt && mount.integrity === 'verified' ? ` ${time(mount.verifiedAt)}` : ''}{mount.damaged.length > 0 && `: ${mount.damaged.length} damaged block(s) on this disk`}</dd>
        <dt>Status</dt><dd>{mount.status}{mount.error && `: ${mount.error}`}</dd>
        <dt>Expires</dt><dd>{mount.expiresAt ? `${time(mount.expiresAt)} unless used again` : '—'}</dd>
      </dl>
      <NoticeLine notice={notice} />
      {mount.status === 'mounting' && <p aria-busy="true">Mounting…</p>}
      {mount.status === 'ready' && (
        <>
          {mount.volumes.length > 1 && (
            <p>
              <label for="volume">Volume </label>
              <select id="volume" value={volume ?? ''} onChange={(e) => navigate(here({ volume: (e.target as HTMLSelectElement).value, path: '' }))}>
                {mount.volumes.map((v) => (
                  <option key={v.id} value={v.id} disabled={v.status !== 'mounted'}>{v.id} {v.fsType ?? ''} {v.label ?? ''} {bytes(v.size)}{v.status !== 'mounted' ? ` (${v.status}: ${v.reason})` : ''}</option>
                ))}
              </select>
            </p>
          )}
          <nav aria-label="breadcrumb" class="crumbs">
            <a href={`/console${here({ path: '' })}`} onClick={onLink} aria-current={crumbs.length === 0 ? 'page' : undefined}>{volume}</a>
            {crumbs.map((c, i) => (
              <span key={i}> / <a href={`/console${here({ path: crumbs.slice(0, i + 1).join('/') })}`} onClick={onLink} aria-current={i === crumbs.length - 1 ? 'page' : undefined}>{c}</a></span>
            ))}
          </nav>
          <p class="toolbar">
            <button type="button" onClick={() => void archive()}>Download {path ? 'this folder' : 'the volume'} (.tar.gz)</button>
            <button type="button" onClick={() => void unmount()}>Unmount</button>
          </p>
          <table class="files">
            <caption>{path || 'volume root'}: page {cursors.length}</caption>
            <thead><tr>{header('name', 'Name')}{header('size', 'Size')}{header('mtime', 'Modified')}<th scope="col">Action</th></tr></thead>
            <tbody>
              {sorted.map((e) => (
                <tr key={e.name} data-entry={e.name} data-type={e.type}>
                  <th scope="row">{e.type === 'dir' ? <a href={`/console${here({ path: join(path, e.name) })}`} onClick={onLink}>{e.name}/</a> : e.name}{e.linkTarget && ` → ${e.linkTarget}`}</th>
                  <td>{e.type === 'file' ? bytes(e.size) : ''}</td>
                  <td>{time(e.mtime)}</td>
                  <td>{e.type === 'file' && <button type="button" onClick={() => void get(e)}>Download {e.name}</button>}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p class="pager">
            <button type="button" disabled={cursors.length < 2} onClick={() => { const back = cursors.slice(0, -1); setCursors(back); void list(back[back.length - 1]); }}>Previous page</button>
            <button type="button" disabled={!next} onClick={() => { setCursors([...cursors, next]); void list(next); }}>Next page</button>
          </p>
        </>
      )}
      {mount.status === 'released' && <p>This mount is released; mount the point again from <a href={`/console/vms/${encodeURIComponent(mount.vmId)}`} onClick={onLink}>its VM</a>.</p>}
    </main>
  );
}
