import { Query } from '@nestjs/cqrs';
import { RestoreMountDescription } from './restore-mount-description';

/** Newest first. */
export class ListRestoreMountsQuery extends Query<RestoreMountDescription[]> {
  constructor(readonly filter: { status?: RestoreMountDescription['status']; restorePointId?: string }) {
    super();
  }
}
