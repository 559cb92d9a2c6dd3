import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { POINT_EXPORT_CLOSED, POINT_EXPORT_OPENED, POINT_EXPORT_STREAM_PREFIX, PointExportClosed, PointExportOpened } from '../../src/disk-images/point-export.events';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { PointExportView } from './point-export.entity';

@Injectable()
export class PointExportsProjector implements Projector {
  readonly name = 'point-exports';
  readonly filter = { streamPrefixes: [POINT_EXPORT_STREAM_PREFIX] };
  readonly tables = ['rm_point_exports'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const repo = manager.getRepository(PointExportView);
    if (event.type === POINT_EXPORT_OPENED) {
      const d = event.data as PointExportOpened['data'];
      await repo.insert({
        exportId: d.exportId,
        restorePointId: d.restorePointId,
        vmId: d.vmId,
        repositoryId: d.repositoryId,
        hubInstance: d.hubInstance,
        tls: d.tls,
        disks: d.disks,
        status: 'open',
        openedAt: event.createdAt,
        openedBy: event.metadata.actor,
        closedAt: null,
        closeReason: null,
        closeDetail: null,
      });
    } else if (event.type === POINT_EXPORT_CLOSED) {
      const d = event.data as PointExportClosed['data'];
      await repo.update({ exportId: d.exportId }, { status: 'closed', closedAt: event.createdAt, closeReason: d.reason, closeDetail: d.detail });
    }
  }
}
