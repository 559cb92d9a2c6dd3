import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { lockedUntil, setImmutable } from '../repositories/adapters/immutable-files';
import { ActiveRepositoriesQuery } from '../repositories/queries/active-repositories.query';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import type { RepositoryDefinition } from '../repositories/registry/repository.events';
import { ProjectionsService } from '../projection-runner/projections.service';
import { RestorePoint } from './chain.events';
import { pointFiles } from './chain-files';
import { chunkPackFiles } from '../repositories/chunks/point-server';
import { join } from 'node:path';
import { lockedFromOf } from './immutability';
import { ChainStates } from './chain-states';
import { RepositoryRestorePointsQuery } from './queries/repository-restore-points.query';

/**
 * The files of a point in an immutable repository get the immutable attribute once the point is recorded, and keep it
 * until a delete whose lock expired clears it. A hub that stopped between recording a point and sealing it seals it
 * at its next start, as every other point still within its lock.
 */
@Injectable()
export class ImmutablePoints implements OnApplicationBootstrap {
  private readonly logger = new Logger('immutability');

  constructor(
    private readonly repositories: RepositoriesService,
    private readonly queries: QueryBus,
    private readonly chains: ChainStates,
    private readonly projections: ProjectionsService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.projections.waitForCaughtUp('repositories');
    await this.projections.waitForCaughtUp('restore-points');
    for (const repo of await this.queries.execute(new ActiveRepositoriesQuery())) {
      const definition = await this.repositories.definition(repo.repositoryId).catch(() => null);
      if (!definition?.immutableDays) continue;
      const vms = [...new Set((await this.queries.execute(new RepositoryRestorePointsQuery(repo.repositoryId))).map((p) => p.vmId))];
      for (const vmId of vms) {
        for (const point of (await this.chains.load(vmId, repo.repositoryId)).points) {
          await this.seal(point, definition).catch((e) => this.logger.error(`restore point ${point.restorePointId} could not be made immutable: ${String(e)}`));
        }
      }
    }
  }

  /**
   * Makes the point's files immutable when its repository keeps points so and its lock has not expired. `repository`:
   * its definition where the caller has it (a sweep or a rescan of many points), read from the events otherwise.
   */
  async seal(point: RestorePoint, repository?: RepositoryDefinition): Promise<void> {
    const { root, immutableDays } = repository ?? (await this.repositories.definition(point.repositoryId));
    if (!immutableDays || lockedUntil(lockedFromOf(point), immutableDays) <= new Date()) return;
    // a chunk point reads through packs other points share: they are sealed with it, and only a garbage collection,
    // which removes a pack once no point names it, clears them
    const packs = (await Promise.all(point.disks.map(async (d) => (await chunkPackFiles(join(root, d.file))) ?? []))).flat();
    await setImmutable([...pointFiles(root, point), ...new Set(packs)], true);
  }
}
