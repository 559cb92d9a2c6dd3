import { Query } from '@nestjs/cqrs';
import { RestoreMountDescription } from './restore-mount-description';

/**
 * The mount once this hub process has finished with what was asked: mounted (or failed), or
 * taken down after a release. With `refuseFailed`, a failed mount is answered 409 with its reason.
 */
export class SettledRestoreMountQuery extends Query<RestoreMountDescription> {
  constructor(
    readonly mountId: string,
    readonly refuseFailed = false,
  ) {
    super();
  }
}
