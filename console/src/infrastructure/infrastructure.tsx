import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/client';
import { Failure, type Refusal, refusalOf } from '../ui/failure';
import { bytes, time } from '../format';
import { fullSentence } from '../pages/repository-usage';

interface Repository {
  repositoryId: string;
  name: string;
  kind: string;
  path: string;
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
  lowSpace: boolean;
  restorePoints: number;
  pointsBytes: number;
  growthBytesPerDay: number | null;
  estimatedFullAt: string | null;
  immutableDays: number | null;
  encryption: { keyFile: string; keyFingerprint: string } | null;
  layout: 'qcow2' | 'chunks';
  chunks: { logicalBytes: number; storedBytes: number; garbageBytes: number; deduplication: number | null; compression: number | null; reduction: number | null; measuredAt: string | null } | null;
}
interface Agent {
  agentId: string;
  name: string;
  fingerprint: string;
  connected: boolean;
  remoteAddress: string | null;
  lastSeenAt: string | null;
}

/** Where backups go and where they come from: each repository's capacity, each agent's connection. */
export function Infrastructure() {
  const [repositories, setRepositories] = useState<Repository[] | null>(null);
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [error, setError] = useState<Refusal | null>(null);

  async function load() {
    const repos = await api.GET('/api/v1/repositories');
    const listed = await api.GET('/api/v1/agents');
    const refused = refusalOf(repos) ?? refusalOf(listed);
    if (refused) return setError(refused);
    setRepositories(repos.data as unknown as Repository[]);
    setAgents(listed.data as unknown as Agent[]);
  }
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), 10_000);
    return () => clearInterval(timer);
  }, []);

  if (error) return <Failure title="Repositories and agents" refusal={error} missing="No repositories" />;
  if (!repositories || !agents) return <main><h1>Repositories and agents</h1><p aria-busy="true">Loading…</p></main>;
  return (
    <main>
      <h1>Repositories and agents</h1>
      <table>
        <caption>Repositories</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Path</th><th scope="col">Restore points</th><th scope="col">Immutable</th><th scope="col">Encrypted</th><th scope="col">Saving</th><th scope="col">Its points</th><th scope="col">Its filesystem</th></tr></thead>
        <tbody>
          {repositories.map((r) => {
            // as df counts it: used over what a writer can reach (used + available), so blocks reserved for root or
            // held back by the filesystem do not read as used
            const percent = r.usedBytes + r.freeBytes ? Math.round((r.usedBytes / (r.usedBytes + r.freeBytes)) * 100) : 0;
            return (
              <tr key={r.repositoryId} data-repository={r.repositoryId}>
                <th scope="row">{r.name}</th>
                <td>{r.kind}</td>
                <td><code>{r.path}</code></td>
                <td data-points={r.restorePoints}>{r.restorePoints}</td>
                <td data-immutable-days={r.immutableDays ?? 0}>{r.immutableDays ? `each point for ${r.immutableDays} day${r.immutableDays === 1 ? '' : 's'}` : 'no'}</td>
                <td data-encrypted={r.encryption ? 'yes' : 'no'}>{r.encryption ? <span title={`key file ${r.encryption.keyFile}`}>key <code>{r.encryption.keyFingerprint.slice(0, 19)}…</code></span> : 'no'}</td>
                <td data-layout={r.layout}>{saving(r)}</td>
                <td data-points-bytes={r.pointsBytes}>
                  {bytes(r.pointsBytes)}
                  <small class="full-date" data-estimated-full={r.estimatedFullAt ?? ''}>{fullSentence(r)}</small>
                </td>
                <td>
                  <div role="progressbar" aria-label={`space used in ${r.name}`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={percent} class={`bar${r.lowSpace ? ' low' : ''}`}>
                    <div style={{ width: `${percent}%` }} />
                  </div>
                  {/* the filesystem's figures count every file on it, other repositories' and other programs' included */}
                  {bytes(r.usedBytes)} used, {bytes(r.freeBytes)} free ({percent}% used){r.lowSpace && ' (low on space)'}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <table>
        <caption>Agents</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Connection</th><th scope="col">Last seen</th><th scope="col">Key</th></tr></thead>
        <tbody>
          {agents.map((a) => (
            <tr key={a.agentId} data-agent={a.agentId} data-connected={String(a.connected)}>
              <th scope="row">{a.name}</th>
              <td>{a.connected ? `connected from ${a.remoteAddress ?? 'unknown'}` : 'not connected'}</td>
              <td>{time(a.lastSeenAt)}</td>
              <td><code>{a.fingerprint}</code></td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  );
}

/** A chunks repository's reduction as last measured; a qcow2 repository stores what it reads. */
function saving(r: Repository) {
  if (!r.chunks) return 'none (qcow2 chains)';
  const c = r.chunks;
  const x = (n: number | null) => (n === null ? '–' : `${n.toFixed(1)}×`);
  if (!c.measuredAt) return 'chunk store, not measured yet';
  return (
    <span title={`measured ${time(c.measuredAt)}`}>
      {bytes(c.storedBytes)} stored for {bytes(c.logicalBytes)} protected: <strong>{x(c.reduction)}</strong> (deduplication {x(c.deduplication)}, compression {x(c.compression)}){c.garbageBytes ? `, ${bytes(c.garbageBytes)} awaiting collection` : ''}
    </span>
  );
}
