import { Inject } from '@nestjs/common';
import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { AdminTokenQuery, CurrentAdminToken } from './queries/admin-token.query';
import { ADMIN_TOKEN_STREAM, AdminTokenRotated } from './tokens/admin-token.events';

/**
 * Read from the event store on every ask, not from a read model nor a cache: the rotation's own append is what
 * ends the old token, at once and on every hub sharing the store (one indexed row: the stream's last event).
 */
@QueryHandler(AdminTokenQuery)
export class AdminTokenHandler implements IQueryHandler<AdminTokenQuery, CurrentAdminToken | null> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async execute(): Promise<CurrentAdminToken | null> {
    const [last] = await this.store.readStream(ADMIN_TOKEN_STREAM, { direction: 'backwards', maxCount: 1 });
    if (!last) return null;
    const { generation, tokenHash } = last.data as AdminTokenRotated['data'];
    return { generation, tokenHash };
  }
}
