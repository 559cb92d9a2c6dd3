import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { session } from '../session';
import { Options } from '../ui/options';
import { useSettled } from './settled';

export interface VmSelector {
  ids?: string[];
  namePattern?: string;
  agentId?: string;
}
interface Vm {
  vmId: string;
  name: string;
  agentId: string;
}

/** Names listed under "Matches now"; the count says how many more there are. */
const LISTED = 50;
/** Checkboxes drawn at once: a fleet of thousands is found through the filter, not scrolled through. */
const CHECKLIST = 300;

/**
 * Which VMs a policy protects: ticked in a checklist that a filter narrows, a name pattern, one agent's; with the VMs
 * all of it selects right now, as the hub answers (GET /policies/matching-vms): the console does not match them itself,
 * so what it shows is what the scheduler will back up.
 */
export function VmSelectorFields({ selector, onChange, agents, disabled }: { selector: VmSelector; onChange: (s: VmSelector) => void; agents: { agentId: string; name: string }[]; disabled: boolean }) {
  const [vms, setVms] = useState<Vm[] | null>(null);
  const [filter, setFilter] = useState('');
  const [matches, setMatches] = useState<{ vms: Vm[]; error: string | null } | null>(null);

  useEffect(() => {
    void api.GET('/api/v1/vms').then(({ data }) => setVms(((data as unknown as Vm[] | undefined) ?? []).map(({ vmId, name, agentId }) => ({ vmId, name, agentId }))));
  }, []);

  const settled = useSettled(selector);
  useEffect(() => {
    const ids = settled.ids?.length ? settled.ids.join(',') : undefined;
    if (!ids && !settled.namePattern && !settled.agentId) return setMatches({ vms: [], error: null });
    // an answer to a selector since changed must not overwrite the answer to the new one
    let current = true;
    void api.GET('/api/v1/policies/matching-vms', { params: { query: { ids, namePattern: settled.namePattern, agentId: settled.agentId } } }).then(({ data, error }) => {
      if (current) setMatches(error ? { vms: [], error: problem(error) } : { vms: data ?? [], error: null });
    });
    return () => {
      current = false;
    };
  }, [JSON.stringify(settled)]);

  const ticked = new Set(selector.ids ?? []);
  const agentName = new Map(agents.map((a) => [a.agentId, a.name]));
  // ids of VMs no agent reports any more stay on the list, so they can be unticked
  const known = new Set((vms ?? []).map((v) => v.vmId));
  const all: (Vm & { gone?: boolean })[] = [...(vms ?? []), ...[...ticked].filter((id) => !known.has(id)).map((vmId) => ({ vmId, name: vmId, agentId: '', gone: true }))];
  const needle = filter.trim().toLowerCase();
  const shown = all.filter((v) => !needle || v.name.toLowerCase().includes(needle) || v.vmId.toLowerCase().includes(needle));
  const setIds = (ids: string[]) => {
    const chosen = new Set(ids);
    onChange({ ...selector, ids: all.map((v) => v.vmId).filter((id) => chosen.has(id)) });
  };
  const tick = (vmId: string, on: boolean) => setIds(on ? [...ticked, vmId] : [...ticked].filter((id) => id !== vmId));
  const n = matches?.vms.length ?? 0;

  return (
    <fieldset class="vm-selector">
      <legend>VMs</legend>
      <p class="hint" id="p-vms-hint">A VM is protected when it meets every condition given: ticked below (when any is), its name matching the pattern (when one is given), reported by the chosen agent (when one is).</p>
      <div class="vm-pick">
        <label for="p-vm-filter">Find VMs to tick</label>
        <input id="p-vm-filter" type="search" value={filter} placeholder="part of a name or id" aria-controls="p-vm-list" aria-describedby="p-vm-shown" onInput={(e) => setFilter((e.target as HTMLInputElement).value)} onKeyDown={(e) => e.key === 'Enter' && e.preventDefault()} />
        <p id="p-vm-shown" class="hint" aria-live="polite">
          {vms === null ? 'Loading the VMs…' : shown.length > CHECKLIST ? `${CHECKLIST} of the ${shown.length} VMs found shown (narrow the search to see the rest), ${ticked.size} ticked` : `${shown.length} of ${all.length} VMs shown, ${ticked.size} ticked`}
        </p>
        <div class="vm-checklist" role="group" aria-label="VMs to protect" aria-describedby="p-vms-hint">
          <ul id="p-vm-list" class="vm-list">
            {shown.slice(0, CHECKLIST).map((v) => (
              <li key={v.vmId} data-vm={v.vmId}>
                <label>
                  <input type="checkbox" value={v.vmId} checked={ticked.has(v.vmId)} onChange={(e) => tick(v.vmId, (e.target as HTMLInputElement).checked)} disabled={disabled} />{' '}
                  {v.name}
                  <small>{v.name !== v.vmId && ` ${v.vmId}`}{v.gone ? ' (no agent reports it now)' : agentName.has(v.agentId) ? ` on ${agentName.get(v.agentId)}` : ''}</small>
                </label>
              </li>
            ))}
          </ul>
        </div>
        {!disabled && (
          <p class="vm-buttons">
            <button type="button" onClick={() => setIds([...ticked, ...shown.map((v) => v.vmId)])} disabled={!shown.length}>{shown.length > CHECKLIST ? `Tick all ${shown.length} found` : `Tick the ${shown.length} shown`}</button>{' '}
            <button type="button" onClick={() => setIds([])} disabled={!ticked.size}>Untick all</button>
          </p>
        )}
      </div>
      <label for="p-pattern">VM names matching</label>
      <input id="p-pattern" value={selector.namePattern ?? ''} placeholder="web-*" aria-describedby="p-pattern-hint" onInput={(e) => onChange({ ...selector, namePattern: (e.target as HTMLInputElement).value || undefined })} disabled={disabled} />
      <p id="p-pattern-hint" class="hint">* stands for any run of characters, ? for one.</p>
      <label for="p-agent">Only VMs of agent</label>
      <select id="p-agent" value={selector.agentId ?? ''} onChange={(e) => onChange({ ...selector, agentId: (e.target as HTMLSelectElement).value || undefined })} disabled={disabled}>
        {!session.tenant() && <option value="">any agent</option>}
        <Options items={agents.map((a) => ({ id: a.agentId, name: a.name }))} chosen={selector.agentId} />
      </select>
      <div id="p-matches" class="matches" aria-live="polite" data-matches={matches && !matches.error ? n : undefined}>
        {!matches ? <p aria-busy="true">Matching…</p> : matches.error ? <p class="error">{matches.error}</p> : !settled.ids?.length && !settled.namePattern && !settled.agentId ? (
          <p><strong>Matches now: none.</strong> Tick VMs, give a name pattern or choose an agent.</p>
        ) : (
          <>
            <p><strong>Matches now: {n} {n === 1 ? 'VM' : 'VMs'}</strong>{n > LISTED && ` (the first ${LISTED} listed)`}</p>
            {n > 0 && <ul>{matches.vms.slice(0, LISTED).map((v) => <li key={v.vmId} data-match-vm={v.vmId}>{v.name}{v.name !== v.vmId && <small> {v.vmId}</small>}</li>)}</ul>}
          </>
        )}
      </div>
    </fieldset>
  );
}
