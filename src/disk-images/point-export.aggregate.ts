import { isIP } from 'node:net';
import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { POINT_EXPORT_CLOSED, POINT_EXPORT_OPENED, PointExportCloseReason, PointExportEvent, PointExportOpenedData } from './point-export.events';

export interface PointExportState {
  status: 'none' | 'open' | 'closed';
  opened: PointExportOpenedData | null;
  closeReason: PointExportCloseReason | null;
}

export type PointExportCommand =
  | { kind: 'open'; export: PointExportOpenedData; nbdBind: string }
  | { kind: 'close'; reason: PointExportCloseReason; detail: string | null };

/** Whether an address reaches only this host: 127.0.0.0/8 or ::1. */
export function isLoopback(address: string): boolean {
  if (isIP(address) === 4) return address.startsWith('127.');
  return address === '::1' || address === '0:0:0:0:0:0:0:1';
}

/**
 * A plain (unencrypted, unauthenticated) export lets anyone who reaches its port read the disk.
 * It is allowed only where the hub's NBD exports are configured to stay on this host.
 */
export function plainExportRefusal(tls: boolean, nbdBind: string): string | null {
  if (tls || isLoopback(nbdBind)) return null;
  return `a plain export (tls: false) is refused because SENDENSE_NBD_BIND is ${nbdBind}, not a loopback address: without TLS anyone who reaches the port could read the disk. Use tls: true (the answer carries a pre-shared key), or run the hub with SENDENSE_NBD_BIND=127.0.0.1`;
}

export const pointExportAggregate: Aggregate<PointExportState, PointExportCommand, PointExportEvent> = {
  initialState: () => ({ status: 'none', opened: null, closeReason: null }),

  evolve(state, event) {
    switch (event.type) {
      case POINT_EXPORT_OPENED:
        return { ...state, status: 'open', opened: { ...event.data, disks: event.data.disks.map((d) => ({ ...d })) } };
      case POINT_EXPORT_CLOSED:
        return { ...state, status: 'closed', closeReason: event.data.reason };
    }
  },

  decide(command, state) {
    switch (command.kind) {
      case 'open': {
        const e = command.export;
        if (state.status !== 'none') throw new DomainError('conflict', `export ${e.exportId} was already opened`);
        if (!e.disks.length) throw new DomainError('invalid', 'an export serves at least one disk');
        const refusal = plainExportRefusal(e.tls, command.nbdBind);
        if (refusal) throw new DomainError('invalid', refusal);
        const ids = e.disks.map((d) => d.diskId);
        if (new Set(ids).size !== ids.length) throw new DomainError('invalid', `a disk is exported once per export: ${ids.join(', ')}`);
        return [{ type: POINT_EXPORT_OPENED, data: { ...e, disks: e.disks.map((d) => ({ ...d })) } }];
      }
      case 'close': {
        if (state.status === 'none') throw new DomainError('not_found', 'no such restore point export');
        if (state.status === 'closed') return [];
        return [{ type: POINT_EXPORT_CLOSED, data: { exportId: state.opened!.exportId, reason: command.reason, detail: command.detail } }];
      }
    }
  },
};

/** The NBD URI a client (nbdcopy, nbdinfo, qemu's nbd driver) takes: nbds:// when TLS is required. */
export function exportUri(host: string, port: number, exportName: string, tls: boolean): string {
  const where = isIP(host) === 6 ? `[${host}]` : host;
  return `${tls ? 'nbds' : 'nbd'}://${where}:${port}/${encodeURIComponent(exportName)}`;
}
