import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import {
  ExportTarget,
  QEMU_NBD_EXITED,
  QEMU_NBD_START_FAILED,
  QEMU_NBD_START_REQUESTED,
  QEMU_NBD_STARTED,
  QEMU_NBD_STOPPED,
  QEMU_NBD_STREAM_PREFIX,
  QemuNbdExited,
  QemuNbdStarted,
  QemuNbdStartFailed,
} from '../../src/nbd/exports/qemu-nbd.events';
import { Projector } from '../../src/projection-runner/projector';
import { QemuNbdProcessView } from './qemu-nbd-process.entity';

@Injectable()
export class QemuNbdProcessesProjector implements Projector {
  readonly name = 'qemu-nbd-processes';
  readonly filter = { streamPrefixes: [QEMU_NBD_STREAM_PREFIX] };
  readonly tables = ['rm_qemu_nbd_processes'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const repo = manager.getRepository(QemuNbdProcessView);
    const leaseId = (event.data as { leaseId: string }).leaseId;
    switch (event.type) {
      case QEMU_NBD_START_REQUESTED: {
        const t = event.data as unknown as ExportTarget;
        await repo.insert({
          leaseId,
          port: t.port,
          pid: null,
          file: t.file,
          exportName: t.exportName,
          jobId: t.jobId,
          diskId: t.diskId,
          readOnly: t.readOnly,
          state: 'starting',
          exitCode: null,
          signal: null,
          error: null,
          requestedAt: event.createdAt,
          startedAt: null,
          endedAt: null,
        });
        return;
      }
      case QEMU_NBD_STARTED:
        await repo.update({ leaseId }, { state: 'running', pid: (event.data as QemuNbdStarted['data']).pid, startedAt: event.createdAt });
        return;
      case QEMU_NBD_START_FAILED:
        await repo.update({ leaseId }, { state: 'exited', error: (event.data as QemuNbdStartFailed['data']).reason, endedAt: event.createdAt });
        return;
      case QEMU_NBD_EXITED: {
        const d = event.data as QemuNbdExited['data'];
        await repo.update(
          { leaseId },
          { state: 'exited', exitCode: d.code, signal: d.signal, error: d.expected ? null : d.stderrTail || 'exited unexpectedly', endedAt: event.createdAt },
        );
        return;
      }
      case QEMU_NBD_STOPPED:
        await repo.update({ leaseId }, { state: 'stopped' });
        return;
    }
  }
}
