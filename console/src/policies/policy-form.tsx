import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { correlationOf, type Notice, NoticeLine } from '../notice';
import { navigate } from '../router';
import { session } from '../session';
import { Options } from '../ui/options';
import { BacktestChart, type Simulation } from './backtest-chart';
import { type Mark, MarkLegend, PruneTimeline, ruleWords } from './prune-timeline';
import { SchedulePresets } from './schedule-presets';
import { useSettled } from './settled';
import { type VmSelector, VmSelectorFields } from './vm-selector';
import './policies.css';

const RULES = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
type Rules = Partial<Record<(typeof RULES)[number], number>>;
const RULE_LABEL: Record<(typeof RULES)[number], string> = { keepLast: 'Keep last', keepHourly: 'Keep hourly', keepDaily: 'Keep daily', keepWeekly: 'Keep weekly', keepMonthly: 'Keep monthly', keepYearly: 'Keep yearly' };

interface Definition {
  name: string;
  vms: VmSelector;
  repositoryId: string;
  schedule: { cron: string; timezone: string; catchUp?: 'once' | 'skip' };
  fullEvery?: number | null;
  retention: Rules;
  rpoHours: number;
  enabled: boolean;
  drill?: Drill | null;
}

/** Recovery drills: the newest point of each VM booted on its own schedule (the policy's time zone), by each VM's agent or one host. */
interface Drill {
  cron: string;
  agentId?: string;
  timeoutSeconds?: number;
}
const DRILL: Drill = { cron: '0 4 * * 0', timeoutSeconds: 300 };

/** The backtest's window, counted back from now. */
const BACKTEST_DAYS = 30;

type RpoUnit = 'hours' | 'days';
/** An RPO as the form shows it: the number as typed (so typing is never rewritten under the cursor) and its unit. */
interface Rpo {
  text: string;
  unit: RpoUnit;
}
const HOURS_IN: Record<RpoUnit, number> = { hours: 1, days: 24 };
const rpoOf = (hours: number): Rpo => (hours >= 24 && hours % 24 === 0 ? { text: String(hours / 24), unit: 'days' } : { text: String(hours), unit: 'hours' });
const rpoHoursOf = (rpo: Rpo) => Math.round(Number(rpo.text) * HOURS_IN[rpo.unit] * 1e6) / 1e6;

const EMPTY: Definition = { name: '', vms: { ids: [] }, repositoryId: '', schedule: { cron: '0 2 * * *', timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' }, retention: { keepLast: 7 }, rpoHours: 26, enabled: true };
const sameRules = (a: Rules, b: Rules) => RULES.every((r) => (a[r] ?? 0) === (b[r] ?? 0));

/** A policy's form: the next slots as the cron is typed, the prune preview as the rules are, and a backtest of it all. */
export function PolicyForm({ policyId }: { policyId: string | null }) {
  const [form, setForm] = useState<Definition | null>(policyId ? null : EMPTY);
  const [saved, setSaved] = useState<Definition | null>(null);
  const [repositories, setRepositories] = useState<{ repositoryId: string; name: string }[]>([]);
  const [agents, setAgents] = useState<{ agentId: string; name: string }[]>([]);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [slots, setSlots] = useState<{ slots: string[]; error: string | null }>({ slots: [], error: null });
  const [preview, setPreview] = useState<{ vmId: string; marks: Mark[] }[] | null>(null);
  const [confirming, setConfirming] = useState(false);
  /** The hub's refusal of rules that would prune more than half of a VM's points, until the operator saves anyway. */
  const [massPrune, setMassPrune] = useState<string | null>(null);
  const [simulation, setSimulation] = useState<Simulation | null>(null);
  const [pruned, setPruned] = useState(0);
  const [rpo, setRpo] = useState<Rpo>(rpoOf(EMPTY.rpoHours));
  const operate = session.mayOperate();

  useEffect(() => {
    void api.GET('/api/v1/repositories').then(({ data }) => {
      const repos = (data as unknown as { repositoryId: string; name: string }[] | undefined) ?? [];
      setRepositories(repos);
      if (!policyId) setForm((f) => f && { ...f, repositoryId: f.repositoryId || repos[0]?.repositoryId || '' });
    });
    void api.GET('/api/v1/agents').then(({ data }) => {
      const list = (data as unknown as { agentId: string; name: string }[] | undefined) ?? [];
      setAgents(list);
      // a tenant's policy names one of its agents (the hub refuses one that does not)
      if (!policyId && session.tenant()) setForm((f) => f && { ...f, vms: { ...f.vms, agentId: f.vms.agentId ?? list[0]?.agentId } });
    });
    if (policyId)
      void api.GET('/api/v1/policies/{policyId}', { params: { path: { policyId } } }).then(({ data, error }) => {
        if (error) return setNotice({ text: problem(error), alert: true });
        const p = data as unknown as Definition;
        const definition: Definition = { name: p.name, vms: p.vms, repositoryId: p.repositoryId, schedule: p.schedule, fullEvery: p.fullEvery ?? undefined, retention: p.retention, rpoHours: p.rpoHours, enabled: p.enabled, drill: p.drill };
        setForm(definition);
        setSaved(definition);
        setRpo(rpoOf(p.rpoHours));
      });
  }, [policyId]);

  const schedule = useSettled(form?.schedule);
  useEffect(() => {
    if (!schedule) return;
    void api.GET('/api/v1/schedule-preview', { params: { query: { cron: schedule.cron, timezone: schedule.timezone, count: 5 } } }).then(({ data, error }) =>
      setSlots(error ? { slots: [], error: problem(error) } : { slots: (data as unknown as { slots: string[] }).slots, error: null }),
    );
  }, [schedule?.cron, schedule?.timezone]);

  const [drillSlots, setDrillSlots] = useState<{ slots: string[]; error: string | null }>({ slots: [], error: null });
  const drillCron = useSettled(form?.drill?.cron);
  useEffect(() => {
    if (!drillCron || !schedule) return;
    void api.GET('/api/v1/schedule-preview', { params: { query: { cron: drillCron, timezone: schedule.timezone, count: 3 } } }).then(({ data, error }) =>
      setDrillSlots(error ? { slots: [], error: problem(error) } : { slots: (data as unknown as { slots: string[] }).slots, error: null }),
    );
  }, [drillCron, schedule?.timezone]);

  const rules = useSettled(form?.retention);
  useEffect(() => {
    if (!policyId || !rules) return;
    const query = Object.fromEntries(RULES.map((r) => [r, rules[r] ?? 0]));
    void api.GET('/api/v1/policies/{id}/prune-preview', { params: { path: { id: policyId }, query } }).then(({ data, error }) => {
      if (error) return setNotice({ text: problem(error), alert: true });
      setPreview((data as unknown as { chains: { vmId: string; marks: Mark[] }[] }).chains);
    });
  }, [policyId, JSON.stringify(rules), pruned]);

  if (!form) return <main><h1>Policy</h1><p aria-busy="true">Loading…</p></main>;
  // a backtest is of the form as it was when asked: one of an older form would answer for what is no longer there
  const set = (change: Partial<Definition>) => (setForm({ ...form, ...change }), setConfirming(false), setSimulation(null));
  const setRpoField = (next: Rpo) => (setRpo(next), set({ rpoHours: rpoHoursOf(next) }));
  const setDrill = (change: Partial<Drill>) => set({ drill: { ...form.drill!, ...change } });
  const setRule = (rule: (typeof RULES)[number], value: string) => set({ retention: { ...form.retention, [rule]: value === '' ? undefined : Number(value) } });
  const zoned = new Intl.DateTimeFormat(undefined, { timeZone: slots.error ? undefined : form.schedule.timezone, dateStyle: 'full', timeStyle: 'short' });
  const rulesSaved = !!saved && sameRules(form.retention, saved.retention);
  const toPrune = preview?.flatMap((c) => c.marks.filter((m) => m.action === 'prune')) ?? [];

  async function save(e: Event | null, confirmPrune = false) {
    e?.preventDefault();
    setMassPrune(null);
    const body = { ...form!, retention: Object.fromEntries(RULES.filter((r) => form!.retention[r] !== undefined).map((r) => [r, form!.retention[r]])), fullEvery: form!.fullEvery ?? undefined, drill: form!.drill ?? undefined, ...(confirmPrune ? { confirmPrune } : {}) };
    const answer: { data?: unknown; error?: unknown; response: Response } = policyId
      ? await api.PUT('/api/v1/policies/{policyId}', { params: { path: { policyId } }, body: body as never })
      : await api.POST('/api/v1/policies', { body: body as never });
    if (answer.response.status === 409 && problem(answer.error).includes('confirmPrune')) return setMassPrune(problem(answer.error));
    if (answer.error) return setNotice({ text: `Not saved: ${problem(answer.error)}`, alert: true, correlationId: correlationOf(answer.response) });
    setNotice({ text: `Policy ${form!.name} saved`, correlationId: correlationOf(answer.response) });
    if (policyId) setSaved(form);
    else navigate(`/policies/${(answer.data as unknown as { policyId: string }).policyId}`);
  }
  async function prune() {
    const { data, error, response } = await api.POST('/api/v1/policies/{id}/prune', { params: { path: { id: policyId! } } });
    setConfirming(false);
    if (error) return setNotice({ text: `Prune refused: ${problem(error)}`, alert: true, correlationId: correlationOf(response) });
    const chains = (data as unknown as { chains: { pruned: string[]; deferred: { restorePointId: string; reason: string }[] }[] }).chains;
    const pruned = chains.flatMap((c) => c.pruned);
    const deferred = chains.flatMap((c) => c.deferred);
    setNotice({ text: `Pruned ${pruned.length} point(s)${deferred.length ? `; ${deferred.length} deferred (${deferred.map((d) => d.reason).join('; ')})` : ''}`, correlationId: correlationOf(response) });
    setPruned((n) => n + 1);
  }
  async function simulate() {
    const to = new Date();
    const from = new Date(to.getTime() - BACKTEST_DAYS * 86_400_000);
    const { data, error } = await api.POST('/api/v1/policies/simulate', { body: { policy: { ...form!, drill: undefined, fullEvery: form!.fullEvery ?? undefined }, from: from.toISOString(), to: to.toISOString() } as never });
    if (error) return setNotice({ text: `Simulation refused: ${problem(error)}`, alert: true });
    setSimulation(data as unknown as Simulation);
  }

  return (
    <main>
      <h1>{policyId ? `Policy ${saved?.name ?? ''}` : 'New policy'}</h1>
      <NoticeLine notice={notice} />
      <form class="policy" onSubmit={save}>
        <label for="p-name">Name</label>
        <input id="p-name" value={form.name} onInput={(e) => set({ name: (e.target as HTMLInputElement).value })} required disabled={!operate} />
        <VmSelectorFields selector={form.vms} onChange={(vms) => set({ vms })} agents={agents} disabled={!operate} />
        <label for="p-repo">Repository</label>
        <select id="p-repo" value={form.repositoryId} onChange={(e) => set({ repositoryId: (e.target as HTMLSelectElement).value })} disabled={!operate}>
          <Options items={repositories.map((r) => ({ id: r.repositoryId, name: r.name }))} chosen={form.repositoryId} />
        </select>
        <SchedulePresets cron={form.schedule.cron} onCron={(cron) => set({ schedule: { ...form.schedule, cron } })} disabled={!operate} />
        <label for="p-cron">Schedule as cron (minute hour day month weekday)</label>
        <input id="p-cron" value={form.schedule.cron} onInput={(e) => set({ schedule: { ...form.schedule, cron: (e.target as HTMLInputElement).value } })} aria-describedby="p-slots" disabled={!operate} />
        <label for="p-tz">Time zone</label>
        <input id="p-tz" value={form.schedule.timezone} onInput={(e) => set({ schedule: { ...form.schedule, timezone: (e.target as HTMLInputElement).value } })} aria-describedby="p-slots" disabled={!operate} />
        <div id="p-slots" aria-live="polite" class="slots">
          {slots.error ? <p class="error">{slots.error}</p> : (
            <>
              <p>Next backups ({form.schedule.timezone}):</p>
              <ol>{slots.slots.map((s) => <li key={s} data-slot={s}>{zoned.format(new Date(s))}</li>)}</ol>
            </>
          )}
        </div>
        <label for="p-rpo">RPO: at risk when the newest point is older than</label>
        <span class="rpo">
          <input id="p-rpo" type="number" min={0.01} step="any" value={rpo.text} onInput={(e) => setRpoField({ ...rpo, text: (e.target as HTMLInputElement).value })} aria-describedby={rpo.unit === 'days' ? 'p-rpo-hours' : undefined} disabled={!operate} />
          <select id="p-rpo-unit" aria-label="RPO unit" value={rpo.unit} onChange={(e) => setRpoField({ ...rpo, unit: (e.target as HTMLSelectElement).value as RpoUnit })} disabled={!operate}>
            <option value="hours">hours</option>
            <option value="days">days</option>
          </select>
          {rpo.unit === 'days' && <small id="p-rpo-hours">({form.rpoHours} hours)</small>}
        </span>
        <fieldset class="rules">
          <legend>Retention (Proxmox Backup Server's prune rules)</legend>
          {RULES.map((r) => (
            <span key={r}>
              <label for={`p-${r}`}>{RULE_LABEL[r]}</label>
              <input id={`p-${r}`} type="number" min={0} value={form.retention[r] ?? ''} onInput={(e) => setRule(r, (e.target as HTMLInputElement).value)} disabled={!operate} />
            </span>
          ))}
        </fieldset>
        <fieldset class="drill">
          <legend>Recovery drills</legend>
          <label class="choice">
            <input id="p-drill" type="checkbox" checked={!!form.drill} onChange={(e) => set({ drill: (e.target as HTMLInputElement).checked ? (saved?.drill ?? DRILL) : null })} disabled={!operate} /> Boot the newest point of each VM on a schedule and check that its guest answers
          </label>
          {form.drill && (
            <>
              <label for="p-drill-cron">Drill schedule as cron ({form.schedule.timezone})</label>
              <input id="p-drill-cron" value={form.drill.cron} onInput={(e) => setDrill({ cron: (e.target as HTMLInputElement).value })} aria-describedby="p-drill-slots" disabled={!operate} />
              <div id="p-drill-slots" aria-live="polite" class="slots">
                {drillSlots.error ? <p class="error">{drillSlots.error}</p> : (
                  <>
                    <p>Next drills:</p>
                    <ol>{drillSlots.slots.map((s) => <li key={s} data-drill-slot={s}>{zoned.format(new Date(s))}</li>)}</ol>
                  </>
                )}
              </div>
              <label for="p-drill-agent">Host that boots them</label>
              <select id="p-drill-agent" value={form.drill.agentId ?? ''} onChange={(e) => setDrill({ agentId: (e.target as HTMLSelectElement).value || undefined })} disabled={!operate}>
                <option value="">each VM's own agent</option>
                <Options items={agents.map((a) => ({ id: a.agentId, name: a.name }))} chosen={form.drill.agentId} />
              </select>
              <label for="p-drill-timeout">A drill fails when its guest has not answered within (seconds)</label>
              <input id="p-drill-timeout" type="number" min={10} max={3600} value={form.drill.timeoutSeconds ?? DRILL.timeoutSeconds} onInput={(e) => setDrill({ timeoutSeconds: Number((e.target as HTMLInputElement).value) })} disabled={!operate} />
            </>
          )}
        </fieldset>
        <label class="choice"><input type="checkbox" checked={form.enabled} onChange={(e) => set({ enabled: (e.target as HTMLInputElement).checked })} disabled={!operate} /> Enabled</label>
        {operate && <p><button type="submit">Save</button></p>}
      </form>
      {massPrune && (
        <div role="alertdialog" aria-labelledby="mass-prune-title" class="confirm">
          <p id="mass-prune-title">Not saved: {massPrune.replace(/: send confirmPrune: true to apply them$/, '.')} Its next prune deletes them.</p>
          <button type="button" onClick={() => void save(null, true)}>Save anyway</button> <button type="button" onClick={() => setMassPrune(null)}>Keep the old rules</button>
        </div>
      )}

      {policyId && preview && (
        <section aria-labelledby="preview-title">
          <h2 id="preview-title">Prune preview {rulesSaved ? '(the saved rules)' : '(the rules as typed, not saved)'}</h2>
          <MarkLegend />
          {preview.map((chain) => (
            <PruneTimeline key={chain.vmId} vmId={chain.vmId} marks={chain.marks} />
          ))}
          {preview.map((chain) => (
            <table key={chain.vmId} class="preview" data-chain={chain.vmId}>
              <caption>{chain.vmId}: newest point first</caption>
              <thead><tr><th scope="col">Point</th><th scope="col">Time</th><th scope="col">Decision</th><th scope="col">Rule</th></tr></thead>
              <tbody>
                {chain.marks.map((m) => (
                  <tr key={m.restorePointId} data-mark={m.restorePointId} data-action={m.action} data-rule={m.rule}>
                    <th scope="row">{m.restorePointId}</th><td>{new Date(m.createdAt).toLocaleString()}</td><td class={`action-${m.action}`}>{m.action === 'keep' ? '✓' : '✕'} {m.action}</td><td title={ruleWords(m)}>{m.rule}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ))}
          {operate && (
            <p>
              {!rulesSaved && <span>Save the rules before pruning with them. </span>}
              <button type="button" disabled={!rulesSaved || toPrune.length === 0} onClick={() => setConfirming(true)}>Prune now…</button>
            </p>
          )}
          {confirming && (
            <div role="alertdialog" aria-labelledby="confirm-title" class="confirm">
              <p id="confirm-title">Prune {toPrune.length} restore point(s) now? This deletes them: {toPrune.map((m) => m.restorePointId).join(', ')}.</p>
              <button type="button" onClick={() => void prune()}>Confirm prune</button> <button type="button" onClick={() => setConfirming(false)}>Keep them</button>
            </div>
          )}
        </section>
      )}

      <section aria-labelledby="simulate-title">
        <h2 id="simulate-title">Backtest</h2>
        <p><button type="button" onClick={() => void simulate()}>Simulate the last {BACKTEST_DAYS} days</button></p>
        {simulation && <BacktestChart simulation={simulation} days={BACKTEST_DAYS} />}
      </section>
    </main>
  );
}
