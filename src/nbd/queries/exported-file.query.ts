import { Query } from '@nestjs/cqrs';

/** Why one of these files may not be rewritten because some hub's qemu-nbd serves it, or null. */
export class ExportedFileQuery extends Query<string | null> {
  constructor(readonly files: string[]) {
    super();
  }
}
