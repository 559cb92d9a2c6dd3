import { createTestDatabase, TestDatabase } from '../../test/support/test-database';
import { inHubTurn } from '../database/hub-turns';
import { recordUnlessHeld } from './point-id-turn';

/**
 * A synced point's id against a rescan recording the same id at the same time (real PostgreSQL advisory locks; the
 * read model is a map): whichever takes the turn first records it, and the other finds it held.
 */
describe('point ids recorded in turn', () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await db.drop();
  });

  const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('a sync that records while a rescan holds the turn waits for it, then finds the point held by the rescan and records nothing', async () => {
    const held = new Map<string, string>();
    const recorded: string[] = [];
    const rescan = inHubTurn(db.connection, 'pointIds', async () => {
      // the rescan found the id new, and records it a moment later
      await delay(300);
      held.set('rp-1', 'copy-repo');
      recorded.push('rescan');
    });
    await delay(50);
    const holder = await recordUnlessHeld(db.connection, 'rp-1', async (id) => held.get(id) ?? null, async () => {
      held.set('rp-1', 'sync-repo');
      recorded.push('sync');
    });
    await rescan;
    expect({ holder, recorded }).toEqual({ holder: 'copy-repo', recorded: ['rescan'] });
  });

  it('a point nobody holds is recorded, and a rescan after it finds it held', async () => {
    const held = new Map<string, string>();
    expect(await recordUnlessHeld(db.connection, 'rp-2', async (id) => held.get(id) ?? null, async () => void held.set('rp-2', 'sync-repo'))).toBeNull();
    expect(await inHubTurn(db.connection, 'pointIds', async () => held.get('rp-2'))).toBe('sync-repo');
  });
});
