import { Query } from '@nestjs/cqrs';

export interface MountReadingFiles {
  mountId: string;
  restorePointId: string;
  diskId: string;
}

/** An active mount (of any hub on this database) that reads one of these files, or null. */
export class MountReadingFilesQuery extends Query<MountReadingFiles | null> {
  constructor(readonly files: string[]) {
    super();
  }
}
