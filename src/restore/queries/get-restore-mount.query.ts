import { Query } from '@nestjs/cqrs';
import { RestoreMountDescription } from './restore-mount-description';

/** One mount; 404 when unknown. */
export class GetRestoreMountQuery extends Query<RestoreMountDescription> {
  constructor(readonly mountId: string) {
    super();
  }
}
