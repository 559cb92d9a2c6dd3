import { useEffect, useRef, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { time } from '../format';
import { correlationOf, type Notice, NoticeLine } from '../notice';
import { navigate } from '../router';
import { Badge } from '../ui/badge';

export interface WizardPoint {
  restorePointId: string;
  type: 'full' | 'incremental';
  createdAt: string;
  disks: { diskId: string }[];
  integrity: 'verified' | 'unverified' | 'corrupt';
  consistency: 'application' | 'crash' | null;
  configuration: object | null;
}
interface Agent {
  agentId: string;
  name: string;
  connected: boolean;
}
type Whole = 'new-domain' | 'instant' | 'replace' | 'drill';
type Step = 'point' | 'what' | 'target' | 'summary';

const STEPS: [Step, string][] = [
  ['point', 'Point'],
  ['what', 'What'],
  ['target', 'Where'],
  ['summary', 'Summary'],
];
const WHOLE: [Whole, string, string][] = [
  ['instant', 'Instant recovery', 'runs at once from the backup; its disks are copied in the background'],
  ['new-domain', 'As a new VM', 'its disks are copied first, then it is defined'],
  ['replace', 'Into the original VM', 'the VM must be shut off; its disks are replaced'],
  ['drill', 'Recovery drill', 'boots a throwaway copy without network, then removes it'],
];
const DOMAIN_NAME = '[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}';

export function IntegrityBadge({ point }: { point: Pick<WizardPoint, 'integrity'> & { verifiedAt?: string | null } }) {
  if (point.integrity === 'verified') return <Badge tone="ok" text={`verified ${point.verifiedAt ? time(point.verifiedAt) : ''}`.trim()} />;
  return point.integrity === 'corrupt' ? <Badge tone="bad" text="corrupt" /> : <Badge tone="idle" text="unverified" />;
}
export function ConsistencyBadge({ point }: { point: Pick<WizardPoint, 'consistency'> }) {
  if (point.consistency === 'application') return <Badge tone="ok" text="application-consistent" />;
  return point.consistency === 'crash' ? <Badge tone="warn" text="crash-consistent" /> : <Badge tone="idle" text="consistency not known" />;
}

/**
 * Restore as a sequence of questions, each with the answer most operators give already chosen: which point, what
 * to get back, where to, and a summary of exactly what will be asked before anything is. Choosing what to get back
 * moves on at once; files and disk images leave the wizard for the browser and the download they need.
 */
export function RestoreWizard(props: {
  vmId: string;
  vmName: string;
  points: WizardPoint[];
  initial: WizardPoint;
  onClose: () => void;
  onBrowse: (point: WizardPoint, diskId: string) => void;
  onImage: (point: WizardPoint, diskId: string) => void;
}) {
  const { vmId, points, onClose } = props;
  const dialog = useRef<HTMLDialogElement>(null);
  const [step, setStep] = useState<Step>('what');
  const [point, setPoint] = useState<WizardPoint>(props.initial);
  const [what, setWhat] = useState<Whole>('instant');
  const [agents, setAgents] = useState<Agent[]>([]);
  const [agentId, setAgentId] = useState('');
  const [name, setName] = useState(`${props.vmName}-restored`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64));
  const [storageDir, setStorageDir] = useState('');
  const [start, setStart] = useState(true);
  const [memoryMiB, setMemoryMiB] = useState(512);
  const [vcpus, setVcpus] = useState(1);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [sending, setSending] = useState(false);

  useEffect(() => {
    dialog.current?.showModal();
    void api.GET('/api/v1/agents').then(({ data }) => {
      const list = (data as unknown as Agent[] | undefined) ?? [];
      setAgents(list);
      setAgentId((current) => current || (list.find((a) => a.connected) ?? list[0])?.agentId || '');
    });
  }, []);
  // each step starts at its first control, so the keyboard never has to find it
  useEffect(() => void dialog.current?.querySelector<HTMLElement>('.step-body input, .step-body button, .step-body select')?.focus(), [step]);

  const hasConfiguration = !!point.configuration;
  const definition = hasConfiguration || what === 'replace' ? {} : { definition: { memoryMiB, vcpus } };
  const named = what === 'new-domain' || what === 'instant';
  const agentName = agents.find((a) => a.agentId === agentId)?.name ?? agentId;

  function choose(w: Whole) {
    setWhat(w);
    setStep('target');
  }

  async function submit() {
    setSending(true);
    const answer: { data?: unknown; error?: unknown; response: Response } =
      what === 'drill'
        ? await api.POST('/api/v1/restore-points/{id}/drill', { params: { path: { id: point.restorePointId } }, body: { agentId, ...definition } })
        : await api.POST('/api/v1/restores', {
            body: {
              restorePointId: point.restorePointId,
              agentId,
              mode: what === 'instant' ? 'instant' : 'full',
              target:
                what === 'replace'
                  ? { kind: 'replace', vmId, ...(storageDir ? { storageDir } : {}) }
                  : { kind: 'new-domain', name, ...(storageDir ? { storageDir } : {}), ...(what === 'new-domain' ? { start } : {}) },
              ...definition,
            },
          });
    setSending(false);
    if (answer.error) return setNotice({ text: `Restore refused: ${problem(answer.error)}`, alert: true, correlationId: correlationOf(answer.response) });
    navigate(`/restores/${(answer.data as unknown as { restoreId: string }).restoreId}`);
  }

  const label = WHOLE.find(([w]) => w === what)![1];
  return (
    <dialog ref={dialog} class="wizard" aria-labelledby="wizard-title" data-step={step} onClose={onClose}>
      <h2 id="wizard-title">Restore {props.vmName}</h2>
      <ol class="steps">
        {STEPS.map(([s, text], i) => (
          <li key={s} aria-current={s === step ? 'step' : undefined}>
            <span aria-hidden="true">{i + 1}</span> {text}
          </li>
        ))}
      </ol>
      <p class="chosen">
        From the point of <strong>{time(point.createdAt)}</strong> ({point.type}) <IntegrityBadge point={point} /> <ConsistencyBadge point={point} />
        {step !== 'point' && <button type="button" class="link" onClick={() => setStep('point')}>Change the point</button>}
      </p>
      <div class="step-body">
        {step === 'point' && (
          <form onSubmit={(e) => (e.preventDefault(), setStep('what'))}>
            <fieldset>
              <legend>Which point</legend>
              {[...points].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).map((p) => (
                <label key={p.restorePointId} class="choice" data-choice-point={p.restorePointId}>
                  <input type="radio" name="wizard-point" checked={p.restorePointId === point.restorePointId} onChange={() => setPoint(p)} /> {time(p.createdAt)} · {p.type}{' '}
                  <IntegrityBadge point={p} /> <ConsistencyBadge point={p} />
                </label>
              ))}
            </fieldset>
            <p class="wizard-buttons"><button type="submit" class="primary">Next</button></p>
          </form>
        )}
        {step === 'what' && (
          <div class="cards" role="group" aria-label="What to get back">
            {WHOLE.map(([w, title, text]) => (
              <button key={w} type="button" class="card" data-what={w} onClick={() => choose(w)}>
                <strong>{title}</strong>
                <small>{text}</small>
              </button>
            ))}
            {point.disks.map((d) => (
              <button key={`f-${d.diskId}`} type="button" class="card" data-what={`files:${d.diskId}`} onClick={() => props.onBrowse(point, d.diskId)}>
                <strong>Files from {d.diskId}</strong>
                <small>browse the disk's filesystems and download files or folders</small>
              </button>
            ))}
            {point.disks.map((d) => (
              <button key={`i-${d.diskId}`} type="button" class="card" data-what={`image:${d.diskId}`} onClick={() => props.onImage(point, d.diskId)}>
                <strong>Disk image of {d.diskId}</strong>
                <small>download the whole disk as a qcow2 file</small>
              </button>
            ))}
          </div>
        )}
        {step === 'target' && (
          <form class="fields" onSubmit={(e) => (e.preventDefault(), setStep('summary'))}>
            <label for="restore-agent">On the host of agent</label>
            <select id="restore-agent" value={agentId} onChange={(e) => setAgentId((e.target as HTMLSelectElement).value)} required>
              {agents.map((a) => <option key={a.agentId} value={a.agentId}>{a.name}{a.connected ? '' : ' (not connected)'}</option>)}
            </select>
            {named && (
              <>
                <label for="restore-name">New VM name</label>
                <input id="restore-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required pattern={DOMAIN_NAME} />
              </>
            )}
            {what !== 'drill' && (
              <>
                <label for="restore-dir">Storage directory on the host</label>
                <input id="restore-dir" value={storageDir} placeholder="libvirt's default pool" onInput={(e) => setStorageDir((e.target as HTMLInputElement).value)} />
              </>
            )}
            {what === 'new-domain' && (
              <label class="choice"><input id="restore-start" type="checkbox" checked={start} onChange={(e) => setStart((e.target as HTMLInputElement).checked)} /> Start it once restored</label>
            )}
            {!hasConfiguration && what !== 'replace' && (
              <>
                <p>This point holds no VM configuration: it is restored as a minimal VM.</p>
                <label for="restore-memory">Memory (MiB)</label>
                <input id="restore-memory" type="number" min={16} value={memoryMiB} onInput={(e) => setMemoryMiB(Number((e.target as HTMLInputElement).value))} />
                <label for="restore-vcpus">Virtual CPUs</label>
                <input id="restore-vcpus" type="number" min={1} value={vcpus} onInput={(e) => setVcpus(Number((e.target as HTMLInputElement).value))} />
              </>
            )}
            <p class="wizard-buttons">
              <button type="button" onClick={() => setStep('what')}>Back</button> <button type="submit" class="primary">Review</button>
            </p>
          </form>
        )}
        {step === 'summary' && (
          <div>
            <dl class="facts review">
              <dt>Restore</dt><dd data-review="what">{label}</dd>
              <dt>Point</dt><dd>{time(point.createdAt)} ({point.restorePointId})</dd>
              <dt>Host</dt><dd data-review="agent">{agentName}</dd>
              {named && <><dt>New VM name</dt><dd data-review="name">{name}</dd></>}
              {what === 'replace' && <><dt>Replaces</dt><dd data-review="replaces">{props.vmName}, whose disks are overwritten</dd></>}
              {what !== 'drill' && <><dt>Storage directory</dt><dd data-review="dir">{storageDir || "libvirt's default pool"}</dd></>}
              {what === 'new-domain' && <><dt>Started</dt><dd data-review="start">{start ? 'yes, once restored' : 'no, only defined'}</dd></>}
              {what === 'instant' && <><dt>Started</dt><dd data-review="start">yes, at once</dd></>}
              {!hasConfiguration && what !== 'replace' && <><dt>Hardware</dt><dd>{memoryMiB} MiB, {vcpus} virtual CPU{vcpus === 1 ? '' : 's'}</dd></>}
            </dl>
            <p class="wizard-buttons">
              <button type="button" onClick={() => setStep('target')}>Back</button>{' '}
              <button type="button" class={what === 'replace' ? 'danger' : 'primary'} disabled={sending} onClick={() => void submit()}>Start the restore</button>
            </p>
          </div>
        )}
      </div>
      <NoticeLine notice={notice} />
      <p class="wizard-close"><button type="button" onClick={() => dialog.current?.close()}>Cancel</button></p>
    </dialog>
  );
}
