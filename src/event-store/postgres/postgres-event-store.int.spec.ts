import { databaseTargets } from '../../../test/support/test-database';
import { createTestDatabase } from '../../../test/support/test-database';
import { eventStoreContract } from '../event-store.contract';

describe.each(databaseTargets())('PostgresEventStore contract on $label', (target) => {
  eventStoreContract(async () => {
    const db = await createTestDatabase(target);
    return { store: db.store, close: db.drop };
  });
});
