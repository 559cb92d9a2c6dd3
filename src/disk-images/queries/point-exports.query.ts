import { Query } from '@nestjs/cqrs';
import type { PointExportCloseReason } from '../point-export.events';

export interface PointExportDiskAnswer {
  diskId: string;
  host: string;
  port: number;
  exportName: string;
  /** nbds:// with TLS (the key is only in the answer to the POST that opened it), nbd:// without. */
  uri: string;
  tls: boolean;
}

export interface PointExportRecord {
  exportId: string;
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  status: 'open' | 'closed';
  tls: boolean;
  disks: PointExportDiskAnswer[];
  openedAt: Date;
  openedBy: string;
  closedAt: Date | null;
  closeReason: PointExportCloseReason | null;
  closeDetail: string | null;
}

/** Every export of a restore point, newest first; 404 when the point does not exist. */
export class ListPointExportsQuery extends Query<PointExportRecord[]> {
  constructor(readonly restorePointId: string) {
    super();
  }
}

/** 404 when there is no such export. */
export class GetPointExportQuery extends Query<PointExportRecord> {
  constructor(readonly exportId: string) {
    super();
  }
}

/** The open exports one hub process runs: what it checks at start and closes at shutdown. */
export class OpenPointExportsQuery extends Query<{ exportId: string; leaseIds: string[] }[]> {
  constructor(readonly hubInstance: string) {
    super();
  }
}

/** The open exports of hub processes other than this one, with the process of each: a gone one's are taken over. */
export class OthersOpenPointExportsQuery extends Query<{ exportId: string; hubInstance: string; leaseIds: string[] }[]> {
  constructor(readonly hubInstance: string) {
    super();
  }
}

/** How many exports one token (its actor name) holds open, on every hub process sharing the database. */
export class OpenPointExportsByQuery extends Query<number> {
  constructor(readonly actor: string) {
    super();
  }
}
