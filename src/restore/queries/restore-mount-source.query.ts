import { Query } from '@nestjs/cqrs';

/** A restore point as a mount needs it: where its repository is, and each disk's files down the chain. */
export interface RestoreMountSource {
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  status: 'available' | 'deleting' | 'recycled';
  /** The repository's root directory. */
  root: string;
  /** Files relative to the root, the point's own first, then its ancestors'. */
  disks: { diskId: string; files: string[] }[];
}

/** 404 for an unknown restore point or a repository that is gone. */
export class RestoreMountSourceQuery extends Query<RestoreMountSource> {
  constructor(readonly restorePointId: string) {
    super();
  }
}
