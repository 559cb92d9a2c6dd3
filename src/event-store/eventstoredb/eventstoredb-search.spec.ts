import { EventStoreDbEventStore } from './eventstoredb-event-store';

/**
 * The contract holds the adapter to the search only where an EventStoreDB server runs (EVENTSTORE_URL); its search
 * filters in the hub, so that filter is checked here on any machine, against $all as a stand-in client serves it.
 */
describe('EventStoreDbEventStore.searchEvents filters $all in the hub', () => {
  const at = new Date('2025-01-01T00:00:00Z').getTime();
  const all = [
    { n: 1, vmId: 'vm1', correlationId: 'c1', actor: 'alice' },
    { n: 2, vmId: 'vm1-2', correlationId: 'c1', actor: 'bob' },
    { n: 3, vmId: undefined, correlationId: 'c2', actor: 'alice' },
    { n: 4, vmId: 'vm1', correlationId: 'c2', actor: 'bob' },
    { n: 5, vmId: 'vm1', correlationId: 'c2', actor: 'alice' },
  ].map(({ n, vmId, correlationId, actor }) => ({
    event: {
      id: `00000000-0000-4000-8000-00000000000${n}`,
      streamId: `s-${n}`,
      type: n % 2 ? 'Odd' : 'Even',
      revision: 0n,
      isJson: true,
      position: { commit: BigInt(n * 10), prepare: BigInt(n * 10) },
      data: vmId ? { n, vmId } : { n },
      metadata: { correlationId, causationId: correlationId, actor, schemaVersion: 1, $correlationId: correlationId },
      created: at + n * 1000,
    },
  }));

  let store: EventStoreDbEventStore;
  beforeEach(() => {
    store = new EventStoreDbEventStore('esdb://127.0.0.1:1?tls=false');
    const client = {
      // $all from a position, that position's event included, as EventStoreDB reads it
      async *readAll({ fromPosition }: { fromPosition: { commit: bigint } | 'start' }) {
        for (const e of all) if (fromPosition === 'start' || e.event.position.commit >= fromPosition.commit) yield e;
      },
      dispose: async () => undefined,
    };
    Object.assign(store, { client });
  });

  const ns = async (search: Parameters<EventStoreDbEventStore['searchEvents']>[0]) => (await store.searchEvents(search)).map((e) => e.data.n);

  it('by the VM the data names (exactly), by correlation, with the other conditions, a page after a position', async () => {
    expect(await ns({ vmId: 'vm1', maxCount: 100 })).toEqual([1, 4, 5]);
    expect(await ns({ correlationId: 'c2', maxCount: 100 })).toEqual([3, 4, 5]);
    expect(await ns({ correlationId: 'c2', vmId: 'vm1', actor: 'alice', maxCount: 100 })).toEqual([5]);
    expect(await ns({ vmId: 'vm1', filter: { eventTypes: ['Even'] }, maxCount: 100 })).toEqual([4]);
    expect(await ns({ vmId: 'vm1', from: new Date(at + 2000), to: new Date(at + 5000), maxCount: 100 })).toEqual([4]);
    const [first] = await store.searchEvents({ vmId: 'vm1', maxCount: 1 });
    expect(await ns({ vmId: 'vm1', after: first.position, maxCount: 1 })).toEqual([4]);
    expect(await ns({ vmId: 'vm9', maxCount: 100 })).toEqual([]);
    expect((await store.searchEvents({ correlationId: 'c1', maxCount: 1 }))[0].metadata).not.toHaveProperty('$correlationId');
  });
});
