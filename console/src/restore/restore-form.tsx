import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { correlationOf, type Notice, NoticeLine } from '../notice';
import { navigate } from '../router';

interface Agent {
  agentId: string;
  name: string;
  connected: boolean;
}
type Kind = 'new-domain' | 'instant' | 'replace' | 'drill';

const KINDS: [Kind, string][] = [
  ['new-domain', 'As a new VM (copied, then defined)'],
  ['instant', 'Instant recovery (runs at once, copied in the background)'],
  ['replace', 'Into the original VM (shut off; its disks are replaced)'],
  ['drill', 'Recovery drill (boots a throwaway copy without network, then removes it)'],
];

/** Every restore of a whole VM the API offers, for one point: the answer leads to the restore's own page. */
export function RestoreForm({ point, vmId, hasConfiguration, onClose }: { point: string; vmId: string; hasConfiguration: boolean; onClose: () => void }) {
  const [agents, setAgents] = useState<Agent[]>([]);
  const [agentId, setAgentId] = useState('');
  const [kind, setKind] = useState<Kind>('new-domain');
  const [name, setName] = useState(`${vmId}-restored`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64));
  const [start, setStart] = useState(true);
  const [memoryMiB, setMemoryMiB] = useState(512);
  const [vcpus, setVcpus] = useState(1);
  const [notice, setNotice] = useState<Notice | null>(null);

  useEffect(() => {
    void api.GET('/api/v1/agents').then(({ data }) => {
      const list = (data as unknown as Agent[] | undefined) ?? [];
      setAgents(list);
      setAgentId((current) => current || (list.find((a) => a.connected) ?? list[0])?.agentId || '');
    });
  }, []);

  async function submit(e: Event) {
    e.preventDefault();
    const definition = hasConfiguration ? {} : { definition: { memoryMiB, vcpus } };
    const answer: { data?: unknown; error?: unknown; response: Response } =
      kind === 'drill'
        ? await api.POST('/api/v1/restore-points/{id}/drill', { params: { path: { id: point } }, body: { agentId, ...definition } })
        : await api.POST('/api/v1/restores', {
            body: {
              restorePointId: point,
              agentId,
              mode: kind === 'instant' ? 'instant' : 'full',
              target: kind === 'replace' ? { kind: 'replace', vmId } : { kind: 'new-domain', name, start: kind === 'instant' ? undefined : start },
              ...definition,
            },
          });
    if (answer.error) return setNotice({ text: `Restore refused: ${problem(answer.error)}`, alert: true, correlationId: correlationOf(answer.response) });
    navigate(`/restores/${(answer.data as unknown as { restoreId: string }).restoreId}`);
  }

  return (
    <form class="restore-form" onSubmit={submit} aria-labelledby="restore-title">
      <h2 id="restore-title">Restore {point}</h2>
      <fieldset>
        <legend>How</legend>
        {KINDS.map(([value, label]) => (
          <label key={value} class="choice">
            <input type="radio" name="kind" value={value} checked={kind === value} onChange={() => setKind(value)} /> {label}
          </label>
        ))}
      </fieldset>
      <label for="restore-agent">On the host of agent</label>
      <select id="restore-agent" value={agentId} onChange={(e) => setAgentId((e.target as HTMLSelectElement).value)} required>
        {agents.map((a) => <option key={a.agentId} value={a.agentId}>{a.name}{a.connected ? '' : ' (not connected)'}</option>)}
      </select>
      {(kind === 'new-domain' || kind === 'instant') && (
        <>
          <label for="restore-name">New VM name</label>
          <input id="restore-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,63}" />
        </>
      )}
      {kind === 'new-domain' && (
        <label class="choice"><input type="checkbox" checked={start} onChange={(e) => setStart((e.target as HTMLInputElement).checked)} /> Start it once restored</label>
      )}
      {!hasConfiguration && kind !== 'replace' && (
        <>
          <p>This point holds no VM configuration: it is restored as a minimal VM.</p>
          <label for="restore-memory">Memory (MiB)</label>
          <input id="restore-memory" type="number" min={16} value={memoryMiB} onInput={(e) => setMemoryMiB(Number((e.target as HTMLInputElement).value))} />
          <label for="restore-vcpus">Virtual CPUs</label>
          <input id="restore-vcpus" type="number" min={1} value={vcpus} onInput={(e) => setVcpus(Number((e.target as HTMLInputElement).value))} />
        </>
      )}
      <p>
        <button type="submit">Start the restore</button> <button type="button" onClick={onClose}>Close</button>
      </p>
      <NoticeLine notice={notice} />
    </form>
  );
}
