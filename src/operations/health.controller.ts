import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { DatabaseProbe } from '../database/database-probe';
import { DbConnection } from '../database/db-connection';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { DB_CONNECTION } from '../projection-runner/projections.service';
import { Access } from '../http/access.guard';
import { Owned } from '../http/owned';

@ApiTags('operations')
@Controller('api/v1/health')
export class HealthController {
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(DB_CONNECTION) private readonly connection: DbConnection,
    private readonly database: DatabaseProbe,
  ) {}

  @Access('public')
  @Owned('none')
  @Get()
  async health() {
    const body = { eventStore: this.store.kind, database: this.connection.origin };
    const problem = await this.database.problem();
    if (problem) throw new ServiceUnavailableException({ status: 'unavailable', ...body, reason: `database: ${problem}` });
    return { status: 'ok', ...body };
  }
}
