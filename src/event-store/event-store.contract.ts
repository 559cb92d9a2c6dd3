import { randomUUID } from 'node:crypto';
import { EventMetadata, EventStore, NewEvent, RecordedEvent, WrongExpectedRevisionError } from './event-store.port';

/**
 * The one behaviour every EventStore adapter must have. Each adapter's
 * integration spec calls this with a factory for a fresh store.
 */
export function eventStoreContract(open: () => Promise<{ store: EventStore; close: () => Promise<void> }>): void {
  let store: EventStore;
  let close: () => Promise<void>;
  let prefix: string;

  beforeAll(async () => {
    ({ store, close } = await open());
  });
  afterAll(async () => close());
  beforeEach(() => {
    prefix = `contract${randomUUID().replace(/-/g, '').slice(0, 12)}-`;
  });

  const meta = (n = 0): EventMetadata => ({ correlationId: `corr-${n}`, causationId: `cause-${n}`, actor: 'tester', schemaVersion: 1 });
  const ev = (type: string, n: number, id?: string): NewEvent => ({ id, type, data: { n }, metadata: meta(n) });
  const revisionError = async (p: Promise<unknown>) => {
    const error = await p.then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(WrongExpectedRevisionError);
    return error as WrongExpectedRevisionError;
  };

  describe('append with an expected revision', () => {
    it('no_stream creates a stream once and refuses the second time', async () => {
      const s = `${prefix}a`;
      expect((await store.append(s, [ev('Created', 1)], 'no_stream')).nextRevision).toBe(0n);
      const error = await revisionError(store.append(s, [ev('Created', 2)], 'no_stream'));
      expect(error.actual).toBe(0n);
      expect(await store.readStream(s)).toHaveLength(1);
    });

    it('an exact revision appends after it and refuses a stale one', async () => {
      const s = `${prefix}b`;
      await store.append(s, [ev('A', 1), ev('B', 2)], 'no_stream');
      expect((await store.append(s, [ev('C', 3)], 1n)).nextRevision).toBe(2n);
      const error = await revisionError(store.append(s, [ev('D', 4)], 1n));
      expect(error.expected).toBe(1n);
      expect(error.actual).toBe(2n);
      expect((await store.readStream(s)).map((e) => e.type)).toEqual(['A', 'B', 'C']);
    });

    it('stream_exists refuses a missing stream and accepts an existing one', async () => {
      const s = `${prefix}c`;
      const error = await revisionError(store.append(s, [ev('A', 1)], 'stream_exists'));
      expect(error.actual).toBe('no_stream');
      await store.append(s, [ev('A', 1)], 'no_stream');
      expect((await store.append(s, [ev('B', 2)], 'stream_exists')).nextRevision).toBe(1n);
    });

    it('any appends to missing and existing streams', async () => {
      const s = `${prefix}d`;
      expect((await store.append(s, [ev('A', 1)], 'any')).nextRevision).toBe(0n);
      expect((await store.append(s, [ev('B', 2), ev('C', 3)], 'any')).nextRevision).toBe(2n);
    });

    it('of many concurrent writers at one revision exactly one wins', async () => {
      const s = `${prefix}e`;
      await store.append(s, [ev('A', 0)], 'no_stream');
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store.append(s, [ev('B', i)], 0n)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results.filter((r) => r.status === 'rejected')) {
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(WrongExpectedRevisionError);
      }
      expect(await store.readStream(s)).toHaveLength(2);
    });

    it('appending the same event ids again is idempotent', async () => {
      const s = `${prefix}f`;
      const ids = [randomUUID(), randomUUID()];
      const first = await store.append(s, [ev('A', 1, ids[0]), ev('B', 2, ids[1])], 'no_stream');
      const again = await store.append(s, [ev('A', 1, ids[0]), ev('B', 2, ids[1])], 'no_stream');
      expect(again.nextRevision).toBe(first.nextRevision);
      expect((await store.readStream(s)).map((e) => e.id)).toEqual(ids);
    });
  });

  describe('readStream', () => {
    it('reads forwards and backwards, from a revision, with a limit', async () => {
      const s = `${prefix}g`;
      await store.append(s, [1, 2, 3, 4, 5].map((n) => ev(`E${n}`, n)), 'no_stream');
      expect((await store.readStream(s)).map((e) => e.revision)).toEqual([0n, 1n, 2n, 3n, 4n]);
      expect((await store.readStream(s, { direction: 'backwards' })).map((e) => e.type)).toEqual(['E5', 'E4', 'E3', 'E2', 'E1']);
      expect((await store.readStream(s, { fromRevision: 2n, maxCount: 2 })).map((e) => e.type)).toEqual(['E3', 'E4']);
      expect((await store.readStream(s, { direction: 'backwards', fromRevision: 1n })).map((e) => e.type)).toEqual(['E2', 'E1']);
    });

    it('orders revisions numerically past 10, both ways', async () => {
      const s = `${prefix}many`;
      await store.append(s, Array.from({ length: 12 }, (_, i) => ev('E', i)), 'no_stream');
      expect((await store.readStream(s)).map((e) => e.data.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      expect((await store.readStream(s, { direction: 'backwards' })).map((e) => e.data.n)).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
      const all = await store.readAll({ filter: { streamPrefixes: [prefix] }, maxCount: 100 });
      expect(all.map((e) => e.data.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    });

    it('returns nothing for a stream that does not exist', async () => {
      expect(await store.readStream(`${prefix}missing`)).toEqual([]);
    });

    it('keeps type, data and metadata', async () => {
      const s = `${prefix}h`;
      await store.append(s, [{ type: 'Typed', data: { nested: { list: [1, 'two'] }, text: 'x' }, metadata: meta(7) }], 'no_stream');
      const [e] = await store.readStream(s);
      expect(e).toMatchObject({ streamId: s, type: 'Typed', revision: 0n, data: { nested: { list: [1, 'two'] }, text: 'x' } });
      expect(e.metadata).toEqual(meta(7));
      expect(e.createdAt).toBeInstanceOf(Date);
      expect(typeof e.position).toBe('string');
    });
  });

  describe('readAll', () => {
    it('reads in global order after a position, filtered by type and stream prefix, in batches', async () => {
      await store.append(`${prefix}x-1`, [ev('Keep', 1), ev('Drop', 2)], 'no_stream');
      await store.append(`${prefix}y-1`, [ev('Keep', 3)], 'no_stream');
      await store.append(`${prefix}x-2`, [ev('Keep', 4), ev('Keep', 5)], 'no_stream');

      const mine = await store.readAll({ filter: { streamPrefixes: [prefix] }, maxCount: 100 });
      expect(mine.map((e) => e.data.n)).toEqual([1, 2, 3, 4, 5]);
      expect([...mine.map((e) => e.position)].sort()).toEqual(mine.map((e) => e.position));

      const keptX = await store.readAll({ filter: { streamPrefixes: [`${prefix}x-`], eventTypes: ['Keep'] }, maxCount: 100 });
      expect(keptX.map((e) => e.data.n)).toEqual([1, 4, 5]);

      const batch = await store.readAll({ filter: { streamPrefixes: [prefix] }, maxCount: 2 });
      expect(batch.map((e) => e.data.n)).toEqual([1, 2]);
      const next = await store.readAll({ after: batch[1].position, filter: { streamPrefixes: [prefix] }, maxCount: 2 });
      expect(next.map((e) => e.data.n)).toEqual([3, 4]);
    });
  });

  describe('readCorrelation', () => {
    it('returns every event with one correlation id across streams, in order', async () => {
      const correlationId = `${prefix}corr`;
      const m = { ...meta(1), correlationId };
      await store.append(`${prefix}p`, [{ type: 'One', data: {}, metadata: m }], 'no_stream');
      await store.append(`${prefix}q`, [ev('Other', 2)], 'no_stream');
      await store.append(`${prefix}q`, [{ type: 'Two', data: {}, metadata: m }], 0n);
      const events = await store.readCorrelation(correlationId, 100);
      expect(events.map((e) => [e.streamId, e.type])).toEqual([[`${prefix}p`, 'One'], [`${prefix}q`, 'Two']]);
    });
  });

  describe('searchEvents', () => {
    it('finds events by type, stream prefix, actor, VM, correlation and time, in global order, a page after a position', async () => {
      const vm = `${prefix}vm`;
      const correlationId = `${prefix}corr`;
      // the VM each event's data names: exactly that id, not one it is a prefix of
      const vms: Record<number, string> = { 1: vm, 3: `${vm}-2`, 4: vm, 5: `${prefix}other` };
      const by = (actor: string, n: number): NewEvent => ({
        type: n % 2 ? 'Odd' : 'Even',
        data: vms[n] ? { n, vmId: vms[n] } : { n },
        metadata: { ...meta(n), actor, ...(n >= 3 && n <= 4 ? { correlationId } : {}) },
      });
      await store.append(`${prefix}x`, [by('alice', 1), by('bob', 2)], 'no_stream');
      // clear of both appends by more than the millisecond a Date holds (the store keeps microseconds)
      await new Promise((r) => setTimeout(r, 20));
      const between = new Date();
      await new Promise((r) => setTimeout(r, 20));
      await store.append(`${prefix}y`, [by('alice', 3), by('alice', 4), by('bob', 5)], 'no_stream');
      const mine = { streamPrefixes: [prefix] };
      const ns = (events: RecordedEvent[]) => events.map((e) => e.data.n);
      expect(ns(await store.searchEvents({ filter: mine, maxCount: 100 }))).toEqual([1, 2, 3, 4, 5]);
      expect(ns(await store.searchEvents({ filter: { ...mine, eventTypes: ['Odd'] }, maxCount: 100 }))).toEqual([1, 3, 5]);
      expect(ns(await store.searchEvents({ filter: mine, actor: 'alice', maxCount: 100 }))).toEqual([1, 3, 4]);
      expect(ns(await store.searchEvents({ filter: mine, from: between, maxCount: 100 }))).toEqual([3, 4, 5]);
      expect(ns(await store.searchEvents({ filter: mine, to: between, maxCount: 100 }))).toEqual([1, 2]);
      expect(ns(await store.searchEvents({ filter: { streamPrefixes: [`${prefix}y`] }, actor: 'bob', maxCount: 100 }))).toEqual([5]);
      const first = await store.searchEvents({ filter: mine, actor: 'alice', maxCount: 2 });
      expect(ns(first)).toEqual([1, 3]);
      expect(ns(await store.searchEvents({ filter: mine, actor: 'alice', after: first[1].position, maxCount: 2 }))).toEqual([4]);
      expect(await store.searchEvents({ filter: mine, actor: 'nobody', maxCount: 100 })).toEqual([]);
      expect(ns(await store.searchEvents({ vmId: vm, maxCount: 100 }))).toEqual([1, 4]);
      expect(ns(await store.searchEvents({ filter: { eventTypes: ['Even'] }, vmId: vm, maxCount: 100 }))).toEqual([4]);
      expect(ns(await store.searchEvents({ vmId: vm, from: between, maxCount: 100 }))).toEqual([4]);
      expect(ns(await store.searchEvents({ vmId: vm, maxCount: 1 }))).toEqual([1]);
      expect(await store.searchEvents({ vmId: `${prefix}nowhere`, maxCount: 100 })).toEqual([]);
      expect(ns(await store.searchEvents({ correlationId, maxCount: 100 }))).toEqual([3, 4]);
      expect(ns(await store.searchEvents({ correlationId, vmId: vm, maxCount: 100 }))).toEqual([4]);
      const [firstOfStory] = await store.searchEvents({ correlationId, maxCount: 1 });
      expect(ns(await store.searchEvents({ correlationId, after: firstOfStory.position, maxCount: 100 }))).toEqual([4]);
    });
  });

  describe('subscribeToAll', () => {
    it('catches up, then delivers new events live, and ends when aborted', async () => {
      await store.append(`${prefix}s`, [ev('Old', 1), ev('Old', 2)], 'no_stream');
      const abort = new AbortController();
      const seen: RecordedEvent[] = [];
      const done = (async () => {
        for await (const e of store.subscribeToAll({ filter: { streamPrefixes: [prefix] }, signal: abort.signal })) {
          seen.push(e);
          if (seen.length === 4) abort.abort();
        }
      })();
      await waitUntil(() => seen.length === 2);
      await store.append(`${prefix}s`, [ev('New', 3)], 1n);
      await store.append(`${prefix}t`, [ev('New', 4)], 'no_stream');
      await done;
      expect(seen.map((e) => [e.type, e.data.n])).toEqual([['Old', 1], ['Old', 2], ['New', 3], ['New', 4]]);
    });
  });

  describe('waitForAppend', () => {
    it('an append committed after the mark of a read ends a wait that asked for ten minutes', async () => {
      await store.waitForAppend(0); // where the store listens for appends, it does from here on
      const mark = store.readMark();
      expect(await store.readAll({ filter: { streamPrefixes: [`${prefix}w`] }, mark })).toEqual([]);
      await store.append(`${prefix}w`, [ev('Woke', 1)], 'no_stream');
      expect(await waitOrGiveUp((signal) => store.waitForAppend(600_000, signal, mark))).toBe('woken');
    });
  });
}

/** 'woken' if `wait` ends within 10 s, else 'slept' (and the wait is aborted). */
export async function waitOrGiveUp(wait: (signal: AbortSignal) => Promise<void>): Promise<'woken' | 'slept'> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    wait(abort.signal).then(() => 'woken' as const),
    new Promise<'slept'>((resolve) => (timer = setTimeout(resolve, 10_000, 'slept'))),
  ]);
  clearTimeout(timer);
  abort.abort();
  return outcome;
}

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
