import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { time } from '../format';
import { navigate, useRoute } from '../router';
import { sentenceOrPlain, type StoryEvent, who } from './sentences';

type AuditEvent = StoryEvent & { revision: string };

const FIELDS = ['correlationId', 'streamId', 'type', 'actor', 'streamPrefix', 'from', 'to'] as const;
type Field = (typeof FIELDS)[number];
const LABELS: Record<Field, string> = { correlationId: 'Correlation id', streamId: 'Stream', type: 'Event type', actor: 'Actor', streamPrefix: 'Stream starts with', from: 'From (time)', to: 'Until (time)' };

/** `datetime-local` speaks the browser's wall clock; the API speaks ISO 8601 instants. */
const toInstant = (local: string) => (local ? new Date(local).toISOString() : '');
const toLocal = (iso: string) => (iso ? new Date(new Date(iso).getTime() - new Date(iso).getTimezoneOffset() * 60_000).toISOString().slice(0, 16) : '');

/**
 * The event store itself, as the audit reads it: everything one correlation id caused, one stream, or a search by
 * type, actor, stream and time, a page at a time.
 */
export function Audit() {
  const query = new URLSearchParams(useRoute().split('?')[1] ?? '');
  const asked = Object.fromEntries(FIELDS.map((f) => [f, query.get(f) ?? ''])) as Record<Field, string>;
  const after = query.get('after');
  const [form, setForm] = useState(asked);
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    setForm(asked);
    setEvents(null);
    setError(null);
    setNext(null);
    const search = asked.type || asked.actor || asked.streamPrefix || asked.from || asked.to;
    if (!asked.correlationId && !asked.streamId && !search) return;
    void (async () => {
      let answer: { data?: unknown; error?: unknown };
      if (asked.correlationId) answer = await api.GET('/api/v1/audit/correlations/{correlationId}', { params: { path: { correlationId: asked.correlationId } } });
      else if (asked.streamId) answer = await api.GET('/api/v1/audit/streams/{streamId}', { params: { path: { streamId: asked.streamId } } });
      else {
        const q = Object.fromEntries(Object.entries({ type: asked.type, actor: asked.actor, streamPrefix: asked.streamPrefix, from: asked.from, to: asked.to, after: after ?? '' }).filter(([, v]) => v));
        answer = await api.GET('/api/v1/audit/events', { params: { query: q } });
      }
      if (answer.error) return setError(problem(answer.error));
      const page = answer.data as { events: AuditEvent[]; next?: string | null };
      setEvents(page.events);
      setNext(page.next ?? null);
    })();
  }, [useRoute()]);

  const go = (values: Partial<Record<Field | 'after', string>>) => navigate(`/audit?${new URLSearchParams(Object.entries(values).filter(([, v]) => v) as [string, string][])}`);
  function submit(e: Event) {
    e.preventDefault();
    // one way of asking at a time: a correlation id, else a stream, else the search's fields together
    if (form.correlationId) return go({ correlationId: form.correlationId.trim() });
    if (form.streamId) return go({ streamId: form.streamId.trim() });
    go({ type: form.type.trim(), actor: form.actor.trim(), streamPrefix: form.streamPrefix.trim(), from: form.from, to: form.to });
  }
  const what = asked.correlationId ? `with correlation id ${asked.correlationId}` : asked.streamId ? `of stream ${asked.streamId}` : 'matching the search';
  return (
    <main>
      <h1>Audit</h1>
      <form onSubmit={submit} class="filters">
        {FIELDS.map((f) => (
          <span key={f}>
            <label for={`audit-${f}`}>{LABELS[f]} </label>
            {f === 'from' || f === 'to' ? (
              <input id={`audit-${f}`} type="datetime-local" value={toLocal(form[f])} onInput={(e) => setForm({ ...form, [f]: toInstant((e.target as HTMLInputElement).value) })} />
            ) : (
              <input id={`audit-${f}`} value={form[f]} onInput={(e) => setForm({ ...form, [f]: (e.target as HTMLInputElement).value })} />
            )}
          </span>
        ))}
        <button type="submit">Show events</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {events && (
        <>
          <table class="story">
            <caption>{events.length} event(s) {what}, in the order the hub recorded them</caption>
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
          {next && <p><button type="button" onClick={() => go({ ...asked, after: next })}>Next page</button></p>}
        </>
      )}
    </main>
  );
}
