import { useEffect, useState } from 'preact/hooks';
import { api, problem } from '../api/client';
import { time } from '../format';
import { navigate, useRoute } from '../router';

interface AuditEvent {
  eventId: string;
  streamId: string;
  type: string;
  revision: string;
  position: string;
  time: string;
  data: Record<string, unknown>;
  metadata: { actor: string; correlationId: string; causationId: string };
}

/** The events of one correlation id (everything one request or job caused) or of one stream, as the hub recorded them. */
export function Audit() {
  const query = new URLSearchParams(useRoute().split('?')[1] ?? '');
  const correlationId = query.get('correlationId') ?? '';
  const streamId = query.get('streamId') ?? '';
  const [form, setForm] = useState({ correlationId, streamId });
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    setForm({ correlationId, streamId });
    setEvents(null);
    setError(null);
    if (!correlationId && !streamId) return;
    void (async () => {
      const { data, error: refused } = correlationId
        ? await api.GET('/api/v1/audit/correlations/{correlationId}', { params: { path: { correlationId } } })
        : await api.GET('/api/v1/audit/streams/{streamId}', { params: { path: { streamId } } });
      if (refused) return setError(problem(refused));
      setEvents((data as unknown as { events: AuditEvent[] }).events);
    })();
  }, [correlationId, streamId]);

  function submit(e: Event) {
    e.preventDefault();
    const next: Record<string, string> = form.correlationId ? { correlationId: form.correlationId.trim() } : form.streamId ? { streamId: form.streamId.trim() } : {};
    navigate(`/audit?${new URLSearchParams(next)}`);
  }
  return (
    <main>
      <h1>Audit</h1>
      <form onSubmit={submit} class="filters">
        <label for="correlation">Correlation id</label>
        <input id="correlation" value={form.correlationId} onInput={(e) => setForm({ correlationId: (e.target as HTMLInputElement).value, streamId: '' })} />
        <label for="stream">or stream</label>
        <input id="stream" value={form.streamId} onInput={(e) => setForm({ correlationId: '', streamId: (e.target as HTMLInputElement).value })} />
        <button type="submit">Show events</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {events && (
        <table class="story">
          <caption>{events.length} event(s) {correlationId ? `with correlation id ${correlationId}` : `of stream ${streamId}`}, in the order the hub recorded them</caption>
          <thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Stream</th><th scope="col">Actor</th><th scope="col">Data</th></tr></thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.eventId} data-event={e.eventId}>
                <td>{time(e.time)}</td>
                <td>{e.type}</td>
                <td><a href={`/console/audit?streamId=${encodeURIComponent(e.streamId)}`} onClick={(ev) => (ev.preventDefault(), navigate(`/audit?streamId=${encodeURIComponent(e.streamId)}`))}>{e.streamId}</a></td>
                <td>{e.metadata.actor}</td>
                <td><code>{JSON.stringify(e.data).slice(0, 300)}</code></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
