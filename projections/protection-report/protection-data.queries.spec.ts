import { DataSource } from 'typeorm';
import { readProtectionData } from './protection-data.queries';

/** A database whose queries take a while, counting how many it is asked at once. */
function slowDb<T extends object>(base: T) {
  const seen = { inFlight: 0, most: 0 };
  const db = Object.assign(base, {
    query: async () => {
      seen.most = Math.max(seen.most, ++seen.inFlight);
      await new Promise((r) => setTimeout(r, 5));
      seen.inFlight--;
      return [];
    },
  });
  return { db, seen };
}

describe('the protection reads', () => {
  it("go out at once on the pool, and one after another on a transaction's one connection", async () => {
    const pool = slowDb(Object.create(DataSource.prototype) as DataSource);
    await readProtectionData(pool.db);
    expect(pool.seen.most).toBe(2);
    // the `?at=` replay reads through its transaction's EntityManager: one pg client, which takes one query at a time
    const transaction = slowDb({});
    await readProtectionData(transaction.db as never);
    expect(transaction.seen.most).toBe(1);
  });
});
