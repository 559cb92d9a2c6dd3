import { Inject, Injectable } from '@nestjs/common';
import type { Response } from 'express';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { DomainError } from '../eventing/domain-error';
import { BACKUP_COMPLETED, BACKUP_FAILED, backupStream } from './backup.events';

/** Live progress as server-sent events: the job's events from its beginning, until it ends or the client leaves. */
@Injectable()
export class BackupEventsStream {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async stream(jobId: string, res: Response): Promise<void> {
    if (!(await this.store.readStream(backupStream(jobId), { maxCount: 1 })).length) throw new DomainError('not_found', `backup job ${jobId} does not exist`);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const heartbeat = setInterval(() => res.write(': keepalive\n\n'), 15_000);
    try {
      for await (const e of this.store.subscribeToAll({ filter: { streamPrefixes: [backupStream(jobId)] }, signal: abort.signal })) {
        if (e.streamId !== backupStream(jobId)) continue;
        res.write(`id: ${e.position}\nevent: ${e.type}\ndata: ${JSON.stringify({ type: e.type, revision: e.revision.toString(), time: e.createdAt, data: e.data })}\n\n`);
        if (e.type === BACKUP_COMPLETED || e.type === BACKUP_FAILED) break;
      }
    } finally {
      clearInterval(heartbeat);
      res.end();
    }
  }
}
