import { Controller, Get, Headers, Inject, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiHeader, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Access } from '../http/access.guard';
import { BACKUP_STREAM_PREFIX } from '../backups/backup.events';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { streamLive } from '../http/event-stream';
import { ProjectionsService } from '../projection-runner/projections.service';
import { RESTORE_STREAM_PREFIX } from '../vm-restore/restore.events';
import { lastEventId, LiveQuery } from './live.dto';
import { Owned, TenantScope } from '../http/owned';

/** The read model a client lists jobs from before it follows them here. */
const JOBS_READ_MODEL = 'backup-jobs';

/** One stream per console tab: every event of backup jobs and restores as it is appended. */
@ApiTags('live')
@ApiBearerAuth()
@Controller('api/v1/live')
export class LiveController {
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    private readonly projections: ProjectionsService,
    private readonly scope: TenantScope,
  ) {}

  /**
   * Without a position it starts where the jobs read model stands, so a client that opens it first and lists
   * jobs second misses nothing in between.
   */
  @Access('read')
  @Owned('filtered')
  @Get()
  @ApiProduces('text/event-stream')
  @ApiHeader({ name: 'Last-Event-ID', required: false, description: 'the id of the last event seen: the stream resumes after it' })
  async live(@Query() { after }: LiveQuery, @Headers('last-event-id') header: string | undefined, @Res() res: Response): Promise<void> {
    const resume = lastEventId(header) ?? after ?? null;
    const from = resume ?? (await this.projections.checkpoint(JOBS_READ_MODEL));
    const seen = new Map<string, boolean>();
    await streamLive(this.store, { streamPrefixes: [BACKUP_STREAM_PREFIX, RESTORE_STREAM_PREFIX] }, from, res, (e) => this.scope.eventVisible(e, seen));
  }
}
