import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/client';
import { bytes } from '../format';
import { onLink } from '../router';

/** What the overview needs of a repository's details (GET /api/v1/repositories). */
export interface RepositorySpace {
  repositoryId: string;
  name: string;
  pointsBytes: number;
  freeBytes: number | null;
  growthBytesPerDay: number | null;
  estimatedFullAt: string | null;
  lowSpace: boolean;
}
interface Usage {
  samples: { at: string; usedBytes: number }[];
}

const W = 240;
const H = 48;
const DAYS = 30;
const day = (iso: string) => new Date(iso).toLocaleDateString(undefined, { dateStyle: 'medium' });

/** When it fills, in the words an operator plans with; the API's date is kept in the element for whoever checks it. */
export function fullSentence(r: Pick<RepositorySpace, 'estimatedFullAt' | 'growthBytesPerDay'>): string {
  if (r.estimatedFullAt) {
    const days = Math.max(0, Math.round((Date.parse(r.estimatedFullAt) - Date.now()) / 86_400_000));
    return `full in about ${days} day${days === 1 ? '' : 's'}, ${day(r.estimatedFullAt)}`;
  }
  if (r.growthBytesPerDay !== null) return 'not growing: no full date';
  return 'no estimate yet: it needs an hour of history';
}

/**
 * The space each repository's points take over the last 30 days, as a sparkline from the hub's samples, and when
 * at that pace they fill the free space (the hub's estimate, GET /repositories/{id}/usage). Measured as the
 * points' files, not the filesystem: two repositories on one disk each show their own.
 */
export function RepositoryUsage({ repositories }: { repositories: RepositorySpace[] }) {
  const [usage, setUsage] = useState<Record<string, Usage>>({});
  const key = repositories.map((r) => `${r.repositoryId}:${r.pointsBytes}`).join();
  useEffect(() => {
    for (const r of repositories)
      // the route's path parameter is not in the OpenAPI document, as for the other repository routes
      void api.GET('/api/v1/repositories/{id}/usage', { params: { path: { id: r.repositoryId }, query: { days: DAYS } } } as never).then(({ data }) => {
        if (data) setUsage((u) => ({ ...u, [r.repositoryId]: data as unknown as Usage }));
      });
  }, [key]);

  if (!repositories.length) return <p class="empty">No repository yet: <a href="/console/infrastructure" onClick={onLink}>add one</a> for backups to go to.</p>;
  return (
    <ul class="repo-usage">
      {repositories.map((r) => {
        const samples = usage[r.repositoryId]?.samples ?? [];
        const t0 = Date.now() - DAYS * 86_400_000;
        const top = Math.max(1, ...samples.map((s) => s.usedBytes), r.pointsBytes);
        const x = (at: string) => ((Math.max(t0, Date.parse(at)) - t0) / (DAYS * 86_400_000)) * W;
        const y = (v: number) => H - 2 - (v / top) * (H - 4);
        // the line runs on to now at today's figure: a repository that did not change for days is flat to the right edge
        const points = [...samples.map((s) => `${x(s.at).toFixed(1)},${y(s.usedBytes).toFixed(1)}`), `${W},${y(r.pointsBytes).toFixed(1)}`];
        return (
          <li key={r.repositoryId} data-repository-usage={r.repositoryId}>
            <span>
              <strong>{r.name}</strong>: <span data-points-bytes={r.pointsBytes}>{bytes(r.pointsBytes)}</span> in points
              {r.freeBytes !== null && <>, <span data-free-bytes={r.freeBytes}>{bytes(r.freeBytes)}</span> free</>}
            </span>
            <svg viewBox={`0 0 ${W} ${H}`} class="sparkline" role="img" aria-label={`${r.name}: space of its points over the last ${DAYS} days, ${samples.length} sample${samples.length === 1 ? '' : 's'}, now ${bytes(r.pointsBytes)}`}>
              <line x1={0} x2={W} y1={H - 1} y2={H - 1} class="grid" />
              <polyline points={points.join(' ')} />
            </svg>
            <span class={r.lowSpace || (r.estimatedFullAt && Date.parse(r.estimatedFullAt) - Date.now() < 14 * 86_400_000) ? 'full-date tone-bad' : 'full-date'} data-estimated-full={r.estimatedFullAt ?? ''}>
              {fullSentence(r)}
            </span>
          </li>
        );
      })}
    </ul>
  );
}
