import { Query } from '@nestjs/cqrs';

/**
 * The point file a full's target in a chunk repository starts from, so that its agent sends only the blocks that
 * differ: the newest intact point in the repository with a disk of the same size, of a VM the job's agent reports
 * (that VM's own disk first). Only VMs of the same agent: the agent learns the digests of that point's blocks and
 * could, by skipping, make them its own point's, which is nothing it cannot read already. Null when none fits.
 */
export class KnownBaseQuery extends Query<{ restorePointId: string; file: string } | null> {
  constructor(
    readonly repositoryId: string,
    readonly agentId: string,
    readonly vmId: string,
    readonly diskId: string,
    readonly virtualSize: number,
  ) {
    super();
  }
}
