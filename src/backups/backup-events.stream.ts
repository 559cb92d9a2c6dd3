import { Inject, Injectable } from '@nestjs/common';
import type { Response } from 'express';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { DomainError } from '../eventing/domain-error';
import { streamEvents } from '../http/event-stream';
import { BACKUP_COMPLETED, BACKUP_FAILED, backupStream } from './backup.events';

/** Live progress as server-sent events: the job's events from its beginning, until it ends or the client leaves. */
@Injectable()
export class BackupEventsStream {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async stream(jobId: string, res: Response): Promise<void> {
    if (!(await this.store.readStream(backupStream(jobId), { maxCount: 1 })).length) throw new DomainError('not_found', `backup job ${jobId} does not exist`);
    await streamEvents(this.store, backupStream(jobId), [BACKUP_COMPLETED, BACKUP_FAILED], res);
  }
}
