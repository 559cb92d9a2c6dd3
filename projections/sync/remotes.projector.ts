import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { REMOTE_REGISTERED, RemoteRegistered } from '../../src/sync/remotes/remote.events';

@Injectable()
export class RemotesProjector implements Projector {
  readonly name = 'remotes';
  readonly filter = { eventTypes: [REMOTE_REGISTERED] };
  readonly tables = ['rm_remotes'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const d = event.data as RemoteRegistered['data'];
    await manager.query(
      `INSERT INTO rm_remotes (remote_id, name, url, host, port, fingerprint, hub_instance, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (remote_id) DO NOTHING`,
      [d.remoteId, d.name, d.url, d.host, d.port, d.fingerprint, d.hubInstance, event.createdAt],
    );
  }
}
