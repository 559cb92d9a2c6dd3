import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { DatabaseProbe } from '../database/database-probe';
import { DbConnection } from '../database/db-connection';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { DB_CONNECTION, ProjectionsService } from '../projection-runner/projections.service';
import { Access } from '../http/access.guard';
import { Owned } from '../http/owned';

/** A projection failing this long is stuck, not retrying through a blip (its retries back off up to 30 s). */
export const PROJECTION_STUCK_MS = 60_000;

@ApiTags('operations')
@Controller('api/v1/health')
export class HealthController {
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(DB_CONNECTION) private readonly connection: DbConnection,
    private readonly database: DatabaseProbe,
    private readonly projections: ProjectionsService,
  ) {}

  @Access('public')
  @Owned('none')
  @Get()
  async health() {
    const body = { eventStore: this.store.kind, database: this.connection.origin };
    const problem = await this.database.problem();
    if (problem) throw new ServiceUnavailableException({ status: 'unavailable', ...body, reason: `database: ${problem}` });
    // a read model stopped at an event it cannot apply: the API answers, from data that no longer moves
    const stuck = this.projections.stuck(new Date(), PROJECTION_STUCK_MS);
    if (stuck.length) {
      // health answers without a token: the error itself (a key, a path) is for GET /api/v1/projections, behind one
      const reason = stuck.map((p) => `projection ${p.name} has failed since ${p.since.toISOString()} (its error: GET /api/v1/projections)`).join('; ');
      throw new ServiceUnavailableException({ status: 'unavailable', ...body, reason });
    }
    return { status: 'ok', ...body };
  }
}
