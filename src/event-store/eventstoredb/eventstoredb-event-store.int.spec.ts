import { eventStoreContract } from '../event-store.contract';
import { EventStoreDbEventStore } from './eventstoredb-event-store';

const url = process.env.EVENTSTORE_URL;

if (url) {
  describe(`EventStoreDbEventStore contract on ${url}`, () => {
    eventStoreContract(async () => {
      const store = new EventStoreDbEventStore(url);
      return { store, close: () => store.close() };
    });
  });
} else {
  describe.skip('EventStoreDbEventStore contract — SKIPPED: EVENTSTORE_URL is not set and no EventStoreDB server can be installed on this machine', () => {
    it('runs only against a real EventStoreDB server (set EVENTSTORE_URL=esdb://host:2113?tls=false)', () => undefined);
  });
}
