import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { DbConnection } from '../database/db-connection';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { DB_CONNECTION } from '../projection-runner/projections.service';

@ApiTags('operations')
@Controller('api/v1/health')
export class HealthController {
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(DB_CONNECTION) private readonly connection: DbConnection,
    private readonly dataSource: DataSource,
  ) {}

  @Get()
  async health() {
    const body = { eventStore: this.store.kind, database: this.connection.origin };
    try {
      await this.dataSource.query('SELECT 1');
    } catch (error) {
      throw new ServiceUnavailableException({ status: 'unavailable', ...body, reason: `database: ${(error as Error).message}` });
    }
    return { status: 'ok', ...body };
  }
}
