import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { time } from '../format';
import { navigate, onLink, useRoute } from '../router';
import { SAID_TYPES, sentenceOrPlain, type StoryEvent, who } from './sentences';

type AuditEvent = StoryEvent & { revision: string };

/** In the order they stand in the address, so a filtered view links the same way each time. */
const SEARCH = ['vmId', 'jobId', 'type', 'actor', 'streamPrefix', 'from', 'to'] as const;
const IDS = ['correlationId', 'streamId'] as const;
type Field = (typeof SEARCH)[number] | (typeof IDS)[number];
const FIELDS: readonly Field[] = [...SEARCH, ...IDS];

/** `datetime-local` speaks the browser's wall clock; the API speaks ISO 8601 instants. */
const toInstant = (local: string) => (local ? new Date(local).toISOString() : '');
const toLocal = (iso: string) => (iso ? new Date(new Date(iso).getTime() - new Date(iso).getTimezoneOffset() * 60_000).toISOString().slice(0, 16) : '');

/** How many of the newest jobs the job filter offers by name; any other job still goes by its id in the address. */
const RECENT_JOBS = 50;

interface Choices {
  vms: { vmId: string; name: string }[];
  jobs: { jobId: string; label: string }[];
  actors: string[];
}

/** What the filters offer: every VM by name, the newest jobs as "VM · type · time", the agents' and the hub's actors. */
async function loadChoices(): Promise<Choices> {
  const [vms, jobs, agents] = await Promise.all([api.GET('/api/v1/vms'), api.GET('/api/v1/backups', { params: { query: { limit: RECENT_JOBS } } }), api.GET('/api/v1/agents')]);
  const named = ((vms.data ?? []) as unknown as { vmId: string; name: string }[]).sort((a, b) => a.name.localeCompare(b.name));
  const name = new Map(named.map((v) => [v.vmId, v.name]));
  return {
    vms: named.map(({ vmId, name }) => ({ vmId, name })),
    jobs: (jobs.data?.jobs ?? []).map((j) => ({ jobId: j.jobId, label: `${name.get(j.vmId) ?? j.vmId} · ${j.type ?? 'backup'} · ${time(j.startedAt ?? j.requestedAt)}` })),
    // an agent acts as `agent-<name>` (sentences' `who`); a person's token name is typed, the token list being the admin's alone
    actors: ['system', 'admin', ...((agents.data ?? []) as unknown as { name: string }[]).map((a) => `agent-${a.name}`)],
  };
}

/**
 * The event store itself, as the audit reads it: everything one correlation id caused, one stream, or a search by
 * VM, job, actor, type, stream and time, a page at a time.
 */
export function Audit() {
  const route = useRoute();
  const query = new URLSearchParams(route.split('?')[1] ?? '');
  const asked = Object.fromEntries(FIELDS.map((f) => [f, query.get(f) ?? ''])) as Record<Field, string>;
  const after = query.get('after');
  const searching = SEARCH.some((f) => asked[f]);
  const [form, setForm] = useState(asked);
  const [choices, setChoices] = useState<Choices>({ vms: [], jobs: [], actors: [] });
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => void loadChoices().then(setChoices), []);
  useEffect(() => {
    setForm(asked);
    setEvents(null);
    setError(null);
    setNext(null);
    if (!asked.correlationId && !asked.streamId && !searching) return;
    void (async () => {
      let answer: { data?: unknown; error?: unknown };
      if (asked.correlationId) answer = await api.GET('/api/v1/audit/correlations/{correlationId}', { params: { path: { correlationId: asked.correlationId } } });
      else if (asked.streamId) answer = await api.GET('/api/v1/audit/streams/{streamId}', { params: { path: { streamId: asked.streamId } } });
      else answer = await api.GET('/api/v1/audit/events', { params: { query: given({ ...pick(asked, SEARCH), after: after ?? '' }) } });
      if (answer.error) return setError(problem(answer.error));
      const page = answer.data as { events: AuditEvent[]; next?: string | null };
      setEvents(page.events);
      setNext(page.next ?? null);
    })();
  }, [route]);

  const go = (values: Partial<Record<Field | 'after', string>>) => navigate(`/audit${address(values)}`);
  const set = (f: Field) => (e: Event) => setForm({ ...form, [f]: (e.target as HTMLInputElement | HTMLSelectElement).value });
  function submit(e: Event) {
    e.preventDefault();
    // one way of asking at a time: a correlation id, else a stream, else the search's fields together
    if (form.correlationId.trim()) return go({ correlationId: form.correlationId.trim() });
    if (form.streamId.trim()) return go({ streamId: form.streamId.trim() });
    go(Object.fromEntries(SEARCH.map((f) => [f, form[f].trim()])));
  }

  const vmName = (vmId: string) => choices.vms.find((v) => v.vmId === vmId)?.name ?? vmId;
  const jobLabel = (jobId: string) => choices.jobs.find((j) => j.jobId === jobId)?.label ?? `job ${jobId}`;
  const what = asked.correlationId ? `with correlation id ${asked.correlationId}` : asked.streamId ? `of stream ${asked.streamId}` : inWords(asked, vmName, jobLabel);
  // a VM or job the address names that the lists do not (gone, older than the newest jobs) is still offered, by its id
  const vmOptions = asked.vmId && !choices.vms.some((v) => v.vmId === asked.vmId) ? [...choices.vms, { vmId: asked.vmId, name: asked.vmId }] : choices.vms;
  const jobOptions = asked.jobId && !choices.jobs.some((j) => j.jobId === asked.jobId) ? [...choices.jobs, { jobId: asked.jobId, label: `job ${asked.jobId}` }] : choices.jobs;
  return (
    <main>
      <h1>Audit</h1>
      <form onSubmit={submit} aria-label="Find events">
        <fieldset class="filters">
          <legend>Events of</legend>
          <span>
            <label for="audit-vmId">VM </label>
            <select id="audit-vmId" value={form.vmId} onChange={set('vmId')}>
              <option value="">any VM</option>
              {vmOptions.map((v) => <option key={v.vmId} value={v.vmId}>{v.name}</option>)}
            </select>
          </span>
          <span>
            <label for="audit-jobId">Job </label>
            <select id="audit-jobId" value={form.jobId} onChange={set('jobId')}>
              <option value="">any job</option>
              {jobOptions.map((j) => <option key={j.jobId} value={j.jobId}>{j.label}</option>)}
            </select>
          </span>
          <span>
            <label for="audit-actor">Actor </label>
            <input id="audit-actor" list="audit-actors" value={form.actor} onInput={set('actor')} maxLength={63} />
            <datalist id="audit-actors">{choices.actors.map((a) => <option key={a} value={a} label={who(a)} />)}</datalist>
          </span>
          <span>
            <label for="audit-type">Event type </label>
            <input id="audit-type" list="audit-types" value={form.type} onInput={set('type')} maxLength={100} />
            <datalist id="audit-types">{[...SAID_TYPES].sort().map((t) => <option key={t} value={t} />)}</datalist>
          </span>
          {(['from', 'to'] as const).map((f) => (
            <span key={f}>
              <label for={`audit-${f}`}>{f === 'from' ? 'From ' : 'Until '}</label>
              <input id={`audit-${f}`} type="datetime-local" value={toLocal(form[f])} onInput={(e) => setForm({ ...form, [f]: toInstant((e.target as HTMLInputElement).value) })} />
            </span>
          ))}
          <span>
            <label for="audit-streamPrefix">Stream starts with </label>
            <input id="audit-streamPrefix" value={form.streamPrefix} onInput={set('streamPrefix')} maxLength={200} />
          </span>
        </fieldset>
        <fieldset class="filters">
          <legend>Or one story by its id</legend>
          <span>
            <label for="audit-correlationId">Correlation id </label>
            <input id="audit-correlationId" value={form.correlationId} onInput={set('correlationId')} maxLength={128} />
          </span>
          <span>
            <label for="audit-streamId">Stream </label>
            <input id="audit-streamId" value={form.streamId} onInput={set('streamId')} maxLength={200} />
          </span>
        </fieldset>
        <p class="actions">
          <button type="submit" class="primary">Show events</button>{' '}
          {(searching || asked.correlationId || asked.streamId) && <a href="/console/audit" onClick={onLink} data-clear>Clear filters</a>}
        </p>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {!events && !error && !searching && !asked.correlationId && !asked.streamId && <p>Choose a VM, a job, an actor, an event type or a time range, then Show events.</p>}
      {events && (
        <>
          <p role="status" data-count={events.length}>
            {events.length === 0 ? (next ? `No event ${what} on this page; there may be more on the next.` : `No event ${what}.`) : `${events.length}${next ? ' (more on the next page)' : ''} event${events.length === 1 ? '' : 's'} ${what}`}
          </p>
          {events.length === 0 && !next && <p data-empty>{emptyAdvice(asked)}</p>}
          {events.length > 0 && (
            <table class="story">
              <caption class="visually-hidden">Events {what}, in the order the hub recorded them</caption>
              <thead><tr><th scope="col">Time</th><th scope="col">What happened</th><th scope="col">Who</th><th scope="col">Correlation</th><th scope="col">Details</th></tr></thead>
              <tbody>
                {events.map((e) => {
                  const said = sentenceOrPlain(e);
                  return (
                    <tr key={e.eventId} data-event={e.eventId} data-type={e.type}>
                      <td>{time(e.time)}</td>
                      <td class={said.tone === 'bad' ? 'tone-bad' : undefined} data-sentence>{said.text}</td>
                      <td>{who(e.metadata.actor)}</td>
                      <td><a href={`/console/audit?correlationId=${encodeURIComponent(e.metadata.correlationId)}`} onClick={(ev) => (ev.preventDefault(), go({ correlationId: e.metadata.correlationId }))}>{e.metadata.correlationId.slice(0, 8)}</a></td>
                      <td>
                        <details>
                          <summary>{e.type}</summary>
                          <p>stream <a href={`/console/audit?streamId=${encodeURIComponent(e.streamId)}`} onClick={(ev) => (ev.preventDefault(), go({ streamId: e.streamId }))}>{e.streamId}</a></p>
                          <pre>{JSON.stringify(e.data, null, 2)}</pre>
                        </details>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
          {next && <p><button type="button" onClick={() => go({ ...asked, after: next })}>Next page</button></p>}
        </>
      )}
    </main>
  );
}

const given = (values: Record<string, string>) => Object.fromEntries(Object.entries(values).filter(([, v]) => v));
const pick = <K extends string>(values: Record<string, string>, keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, values[k]])) as Record<K, string>;

/** `?vmId=…&jobId=…&type=…`: the fields given, in the order of FIELDS, then the page. */
function address(values: Partial<Record<Field | 'after', string>>): string {
  const q = new URLSearchParams([...FIELDS, 'after' as const].filter((f) => values[f]).map((f) => [f, values[f]!]));
  return q.size ? `?${q}` : '';
}

/** The search in words: `of VM web01, by operator alice, of type BackupFailed, from … until …`. */
function inWords(asked: Record<Field, string>, vmName: (id: string) => string, jobLabel: (id: string) => string): string {
  const parts = [
    asked.vmId && `of VM ${vmName(asked.vmId)}`,
    asked.jobId && `of the job ${jobLabel(asked.jobId)}`,
    asked.actor && `by ${who(asked.actor)}`,
    asked.type && `of type ${asked.type}`,
    asked.streamPrefix && `in streams starting ${asked.streamPrefix}`,
    asked.from && `from ${time(asked.from)}`,
    asked.to && `until ${time(asked.to)}`,
  ].filter(Boolean);
  return parts.join(', ');
}

/** What to change when nothing matches: each narrowing filter given, loosened. */
function emptyAdvice(asked: Record<Field, string>): string {
  if (asked.correlationId || asked.streamId) return 'Check the id.';
  const loosen = [
    asked.vmId && 'choose any VM',
    asked.jobId && 'choose any job',
    asked.actor && 'empty the actor',
    asked.type && 'empty the event type',
    asked.streamPrefix && 'empty the stream prefix',
    (asked.from || asked.to) && 'widen the time range',
  ].filter(Boolean) as string[];
  return `Try to ${loosen.join(', ')}, or clear the filters.`;
}
