import { Query } from '@nestjs/cqrs';
import { MountIntegrity } from '../mount-integrity';

/** The integrity of a restore point as a mount of one of its disks shows it, current when asked. */
export class MountIntegrityQuery extends Query<MountIntegrity> {
  constructor(
    readonly restorePointId: string,
    readonly diskId: string,
  ) {
    super();
  }
}
