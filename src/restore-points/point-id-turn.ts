import type { DbConnection } from '../database/db-connection';
import { inHubTurn } from '../database/hub-turns';

/**
 * Records a restore point whose id comes from elsewhere (a point synced from another hub) unless this hub holds that
 * id already, in the hubs' turn for point ids: a rescan recording the same id meanwhile (of a copy of the
 * repository) either ran before, and the point is found held, or runs after, and finds it. `record` must return
 * once the read model shows the point. The repository that held the id, or null when it was recorded now.
 */
export function recordUnlessHeld(connection: DbConnection, restorePointId: string, holderOf: (restorePointId: string) => Promise<string | null>, record: () => Promise<void>): Promise<string | null> {
  return inHubTurn(connection, 'pointIds', async () => {
    const holder = await holderOf(restorePointId);
    if (holder === null) await record();
    return holder;
  });
}
