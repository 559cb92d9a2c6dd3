import { Injectable } from '@nestjs/common';
import { DomainError } from '../eventing/domain-error';
import { measure } from '../repositories/qcow2/qemu-img';
import { RepositoriesService } from '../repositories/registry/repositories.service';

const GiB = 1024 ** 3;

/** Before a backup writes anything: the worst case a target can grow to must fit in the repository. */
@Injectable()
export class SpaceCheck {
  constructor(private readonly repositories: RepositoriesService) {}

  async requiredBytes(virtualSizes: number[]): Promise<number> {
    let total = 0;
    for (const size of virtualSizes) total += (await measure({ size }, { outputFormat: 'qcow2' })).fullyAllocated;
    return total;
  }

  async assertFits(repositoryId: string, virtualSizes: number[]): Promise<{ requiredBytes: number; freeBytes: number }> {
    const [requiredBytes, { freeBytes }] = await Promise.all([this.requiredBytes(virtualSizes), this.repositories.capacity(repositoryId)]);
    if (requiredBytes > freeBytes) {
      throw new DomainError(
        'conflict',
        `not enough space in repository ${repositoryId}: ${(freeBytes / GiB).toFixed(1)} GiB free, but the backup may need up to ${(requiredBytes / GiB).toFixed(1)} GiB (qemu-img measure of ${virtualSizes.length} disk(s))`,
      );
    }
    return { requiredBytes, freeBytes };
  }
}
