import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { NBD_PORT_ALLOCATED, NBD_PORT_RELEASED, NBD_PORTS_STREAM_PREFIX, NbdPortAllocated, NbdPortReleased } from '../../src/nbd/ports/nbd-port.events';
import { Projector } from '../../src/projection-runner/projector';
import { NbdLeaseView } from './nbd-lease.entity';

@Injectable()
export class NbdLeasesProjector implements Projector {
  readonly name = 'nbd-leases';
  readonly filter = { streamPrefixes: [NBD_PORTS_STREAM_PREFIX] };
  readonly tables = ['rm_nbd_leases'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const repo = manager.getRepository(NbdLeaseView);
    const host = event.streamId.slice(NBD_PORTS_STREAM_PREFIX.length);
    if (event.type === NBD_PORT_ALLOCATED) {
      const d = event.data as NbdPortAllocated['data'];
      await repo.insert({
        leaseId: d.leaseId,
        host,
        port: d.port,
        jobId: d.jobId,
        diskId: d.diskId,
        status: 'active',
        allocatedAt: event.createdAt,
        allocatedBy: event.metadata.actor,
        releasedAt: null,
        releaseReason: null,
      });
    } else if (event.type === NBD_PORT_RELEASED) {
      const d = event.data as NbdPortReleased['data'];
      await repo.update({ leaseId: d.leaseId }, { status: 'released', releasedAt: event.createdAt, releaseReason: d.reason });
    }
  }
}
