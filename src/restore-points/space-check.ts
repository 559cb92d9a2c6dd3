import { Injectable } from '@nestjs/common';
import { DomainError } from '../eventing/domain-error';
import { measure } from '../repositories/qcow2/qemu-img';
import { RepositoriesService } from '../repositories/registry/repositories.service';

const GiB = 1024 ** 3;
/** Disk sizes whose measure is kept: a fleet's disks come in a few sizes, and each VM's stay the same between backups. */
const SIZES_KEPT = 1024;

/** Before a backup writes anything: the worst case a target can grow to must fit in the repository. */
@Injectable()
export class SpaceCheck {
  /**
   * What qemu-img measure answered for a virtual size: it depends on the size alone (a new qcow2 with qemu's
   * defaults), and a qemu-img process per backup held the hub's event loop while a busy machine started it.
   */
  private readonly measured = new Map<number, number>();

  constructor(private readonly repositories: RepositoriesService) {}

  async requiredBytes(virtualSizes: number[]): Promise<number> {
    let total = 0;
    for (const size of virtualSizes) {
      let bytes = this.measured.get(size);
      if (bytes === undefined) {
        bytes = (await measure({ size }, { outputFormat: 'qcow2' })).fullyAllocated;
        if (this.measured.size >= SIZES_KEPT) this.measured.delete(this.measured.keys().next().value!);
        this.measured.set(size, bytes);
      }
      total += bytes;
    }
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
