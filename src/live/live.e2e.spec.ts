import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../../test/support/test-hub';

interface Message {
  id: string | null;
  event: string;
  data: string;
}

/** GET /api/v1/live on a real hub: positions as ids, a resume right after the last id seen, hostile positions refused. */
describe('the live stream of job and restore events', () => {
  let hub: TestHub;
  let base: string;

  beforeAll(async () => {
    hub = await startTestHub();
    base = `${await hub.url()}/api/v1/live`;
  });
  afterAll(async () => hub.close());

  /** Reads messages until `count` are in, then hangs up. */
  async function read(count: number, headers: Record<string, string> = {}, query = ''): Promise<Message[]> {
    const abort = new AbortController();
    const res = await fetch(base + query, { headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...headers }, signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    const messages: Message[] = [];
    let buffer = '';
    while (messages.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const lines = buffer.slice(0, end).split('\n');
        buffer = buffer.slice(end + 2);
        if (lines.every((l) => l.startsWith(':'))) continue;
        const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2) ?? null;
        messages.push({ id: field('id'), event: field('event') ?? 'message', data: field('data') ?? '' });
      }
    }
    abort.abort();
    return messages;
  }

  /** A type no projector knows: the jobs and restores read models stay as they are. */
  const append = (streamId: string, n: number) =>
    hub.db.store.append(streamId, [{ type: 'LiveTestEvent', data: { n }, metadata: { correlationId: `live-${n}`, causationId: randomUUID(), actor: 'test', schemaVersion: 1 } }]);

  it('sends job and restore events with their positions, and resumes right after the last id it sent, none twice', async () => {
    const job = `backup-job-${randomUUID()}`;
    const restore = `vm-restore-${randomUUID()}`;
    const first = read(4);
    await new Promise((r) => setTimeout(r, 300));
    await append(job, 1);
    await append(`api-token-${randomUUID()}`, 2); // not a job's: never sent
    await append(restore, 3);
    await append(job, 4);
    const seen = await first;
    expect(seen[0]).toMatchObject({ event: 'ready' });
    const events = seen.slice(1);
    expect(events.map((m) => [m.event, JSON.parse(m.data).streamId, JSON.parse(m.data).data.n, JSON.parse(m.data).correlationId])).toEqual([
      ['LiveTestEvent', job, 1, 'live-1'],
      ['LiveTestEvent', restore, 3, 'live-3'],
      ['LiveTestEvent', job, 4, 'live-4'],
    ]);
    const positions = events.map((m) => m.id!);
    expect([...positions].sort()).toEqual(positions);

    // a reconnect after the first event: the ready message names where it resumes, then the two after it, once each
    const resumed = await read(3, { 'Last-Event-ID': positions[0] });
    expect(resumed.map((m) => [m.event, m.id])).toEqual([['ready', positions[0]], ['LiveTestEvent', positions[1]], ['LiveTestEvent', positions[2]]]);
    expect((await read(3, {}, `?after=${positions[0]}`)).map((m) => m.id)).toEqual([positions[0], positions[1], positions[2]]);
  });

  it('refuses a position it did not send (400), in the header or the query', async () => {
    for (const [headers, query] of [[{ 'Last-Event-ID': '12' }, ''], [{ 'Last-Event-ID': '../../etc' }, ''], [{}, '?after=x'], [{}, '?evil=1']] as [Record<string, string>, string][]) {
      const res = await fetch(base + query, { headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...headers } });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/json');
    }
  });
});

/**
 * A console left open holds a live stream that never ends by itself: a hub told to stop must end it, not wait for the
 * browser to go (it reconnects as soon as it is dropped, so dropping the connections once is not enough).
 */
describe('a hub stopping with a live stream open', () => {
  it('ends the stream and stops, rather than waiting for its client', async () => {
    const hub = await startTestHub();
    const client = new AbortController();
    let closed = false;
    try {
      const res = await fetch(`${await hub.url()}/api/v1/live`, { headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` }, signal: client.signal });
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      expect((await reader.read()).value).toContain('event: ready');
      const stopping = hub.app.close().then(() => (closed = true));
      const ended = await Promise.race([reader.read().then(() => 'the stream ended', () => 'the stream ended'), new Promise((r) => setTimeout(() => r('still open after 20 s'), 20_000))]);
      expect(ended).toBe('the stream ended');
      await Promise.race([stopping, new Promise((r) => setTimeout(r, 20_000))]);
      expect(closed).toBe(true);
    } finally {
      client.abort();
      if (closed) {
        await hub.db.drop();
        rmSync(hub.dataDir, { recursive: true, force: true });
      } else await hub.close();
    }
  }, 60_000);
});
