import { createTestDatabase, TestDatabase } from '../../test/support/test-database';
import type { Aggregate, DomainEvent } from './aggregate';
import { AggregateRepository } from './aggregate-repository';
import { DomainError } from './domain-error';

/** A counter that may only be taken while it is open: enough to show a stale state deciding wrongly. */
type Event = DomainEvent<'Added', { by: number }> | DomainEvent<'Closed', Record<string, never>> | DomainEvent<'Opened', Record<string, never>>;
type Decision = { kind: 'add'; by: number } | { kind: 'close' } | { kind: 'open' };
interface State {
  total: number;
  closed: boolean;
}
const counter: Aggregate<State, Decision, Event> = {
  initialState: () => ({ total: 0, closed: false }),
  evolve: (s, e) => (e.type === 'Added' ? { ...s, total: s.total + e.data.by } : { ...s, closed: e.type === 'Closed' }),
  decide: (d, s) => {
    if (d.kind === 'close') return s.closed ? [] : [{ type: 'Closed', data: {} }];
    if (d.kind === 'open') return s.closed ? [{ type: 'Opened', data: {} }] : [];
    if (s.closed) throw new DomainError('conflict', 'closed');
    return [{ type: 'Added', data: { by: d.by } }];
  },
};

/** Two repositories on one store: two hubs, each with its own cache of the stream's state. */
describe('AggregateRepository: decisions on cached state, checked by the expected revision', () => {
  let db: TestDatabase;
  beforeAll(async () => (db = await createTestDatabase()), 120_000);
  afterAll(async () => db?.drop());

  it('does not read the stream again for a decision on a state it appended itself', async () => {
    const hub = new AggregateRepository(db.store);
    await hub.execute('counter-a', counter, { kind: 'add', by: 1 });
    const reads = jest.spyOn(db.store, 'readStream');
    const result = await hub.execute('counter-a', counter, { kind: 'add', by: 2 });
    expect(result.state.total).toBe(3);
    expect(reads).not.toHaveBeenCalled();
    reads.mockRestore();
  });

  it('reads a stream once to learn the type of one of its events, and again for an id it did not find', async () => {
    const hub = new AggregateRepository(db.store);
    const { eventIds } = await hub.execute('counter-t', counter, { kind: 'add', by: 1 });
    const reads = jest.spyOn(db.store, 'readStream');
    expect(await hub.typeOf('counter-t', eventIds[0])).toBe('Added');
    expect(await hub.typeOf('counter-t', eventIds[0])).toBe('Added');
    expect(reads).toHaveBeenCalledTimes(1);
    expect(await hub.typeOf('counter-t', 'no-such-event')).toBeNull();
    expect(await hub.typeOf('counter-t', 'no-such-event')).toBeNull();
    expect(reads).toHaveBeenCalledTimes(3);
    reads.mockRestore();
  });

  it("decides again on the stored state when another hub appended since it cached the stream", async () => {
    const a = new AggregateRepository(db.store);
    const b = new AggregateRepository(db.store);
    await a.execute('counter-b', counter, { kind: 'add', by: 1 });
    await b.execute('counter-b', counter, { kind: 'add', by: 10 });
    // a's cache says 1: its append is refused by the revision, and it adds to the 11 the store holds
    expect((await a.execute('counter-b', counter, { kind: 'add', by: 100 })).state.total).toBe(111);
    expect((await db.store.readStream('counter-b')).map((e) => e.data)).toEqual([{ by: 1 }, { by: 10 }, { by: 100 }]);
  });

  it('does not take "nothing to do" or a refusal from a stale cache', async () => {
    const a = new AggregateRepository(db.store);
    const b = new AggregateRepository(db.store);
    await a.execute('counter-c', counter, { kind: 'close' });
    await b.execute('counter-c', counter, { kind: 'open' });
    // a's cache says closed: its refusal is stale, the stored state is open
    expect((await a.execute('counter-c', counter, { kind: 'add', by: 7 })).state).toEqual({ total: 7, closed: false });
    await b.execute('counter-c', counter, { kind: 'close' });
    await a.execute('counter-c', counter, { kind: 'open' });
    await b.execute('counter-c', counter, { kind: 'open' }); // b's cache says closed: stale "open" is refused by the revision, then nothing to do
    await b.execute('counter-c', counter, { kind: 'close' });
    // a's cache says open and b closed it: "close" on the cache is appended, refused by the revision, then nothing to do
    expect((await a.execute('counter-c', counter, { kind: 'close' })).events).toEqual([]);
    // a's cache now says closed, as the store does; b opens it: a's "close" is "nothing to do" on its cache only
    await b.execute('counter-c', counter, { kind: 'open' });
    expect((await a.execute('counter-c', counter, { kind: 'close' })).events).toEqual([{ type: 'Closed', data: {} }]);
    expect((await db.store.readStream('counter-c')).map((e) => e.type)).toEqual(['Closed', 'Opened', 'Added', 'Closed', 'Opened', 'Closed', 'Opened', 'Closed']);
  });
});
