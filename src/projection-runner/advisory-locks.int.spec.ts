import { Client } from 'pg';
import { createTestDatabase, TestDatabase } from '../../test/support/test-database';
import { pgClientConfig } from '../database/db-connection';
import { AdvisoryLocks } from './advisory-locks';

describe('AdvisoryLocks (real PostgreSQL)', () => {
  let db: TestDatabase;
  const sessions: AdvisoryLocks[] = [];
  const session = () => {
    const locks = new AdvisoryLocks(pgClientConfig(db.connection));
    sessions.push(locks);
    return locks;
  };
  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    for (const locks of sessions.splice(0)) await locks.close();
    await db.drop();
  });

  it("takes a hub's locks asked for at once, one query at a time on its one connection; another session gets them only once it ends", async () => {
    // how many queries each client has in flight at most: pg 8 queues a query sent while another runs (and warns
    // that pg 9 will refuse it)
    const inFlight = new Map<Client, number>();
    let most = 0;
    const query = Client.prototype.query;
    const spy = jest.spyOn(Client.prototype, 'query').mockImplementation(function (this: Client, ...args: unknown[]) {
      inFlight.set(this, (inFlight.get(this) ?? 0) + 1);
      most = Math.max(most, inFlight.get(this)!);
      const settle = () => void inFlight.set(this, inFlight.get(this)! - 1);
      const result = (query as (...a: unknown[]) => Promise<unknown> | undefined).apply(this, args);
      if (result) result.then(settle, settle);
      else settle();
      return result;
    } as never);
    try {
      const hub = session();
      const names = Array.from({ length: 16 }, (_, i) => `projection-${i}`);
      const taken = await Promise.all(names.map((n) => hub.tryLock(1, n)));
      expect(taken.every((g) => g !== null && hub.holds(g))).toBe(true);
      const other = session();
      expect(await Promise.all(names.map((n) => other.tryLock(1, n)))).toEqual(names.map(() => null));
      await hub.unlock(1, names[0], taken[0]!);
      expect(await other.tryLock(1, names[0])).not.toBeNull();
      await hub.close();
      expect(hub.holds(taken[1]!)).toBe(false);
      expect((await Promise.all(names.slice(1).map((n) => other.tryLock(1, n)))).every((g) => g !== null)).toBe(true);
      expect(most).toBe(1);
    } finally {
      spy.mockRestore();
    }
  });
});
