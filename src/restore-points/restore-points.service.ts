import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { RestorePointView } from '../../projections/restore-points/restore-point.entity';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DomainError } from '../eventing/domain-error';
import { ProjectionsService } from '../projection-runner/projections.service';
import { validateChain } from '../repositories/qcow2/chain-validator';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { chainAggregate, ChainState, childOf, pointAndDescendants, pointOf } from './chain.aggregate';
import { chainStream, RestorePoint } from './chain.events';
import { deletePointFiles } from './chain-files';
import { FilesInUse } from './files-in-use';

const READ_MODEL = 'restore-points';

@Injectable()
export class RestorePointsService implements OnApplicationBootstrap {
  private readonly logger = new Logger('restore-points');

  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly dataSource: DataSource,
    private readonly projections: ProjectionsService,
    private readonly repositories: RepositoriesService,
    private readonly filesInUse: FilesInUse,
  ) {}

  /** A delete that a crash interrupted is finished before the hub serves requests. */
  async onApplicationBootstrap(): Promise<void> {
    await this.projections.waitForCaughtUp(READ_MODEL);
    const deleting = await this.dataSource.getRepository(RestorePointView).findBy({ status: 'deleting' });
    for (const view of deleting) {
      this.logger.warn(`finishing the interrupted delete of restore point ${view.restorePointId}`);
      const position = await this.finishDelete(view.vmId, view.repositoryId, view.restorePointId).catch((e) => {
        this.logger.error(`could not finish deleting ${view.restorePointId}: ${String(e)}`);
        return null;
      });
      await this.projections.waitFor(READ_MODEL, position);
    }
  }

  async add(point: RestorePoint): Promise<string | null> {
    return (await this.aggregates.execute(chainStream(point.vmId, point.repositoryId), chainAggregate, { kind: 'add', point })).position;
  }

  async view(restorePointId: string): Promise<RestorePointView> {
    const view = await this.dataSource.getRepository(RestorePointView).findOneBy({ restorePointId });
    if (!view) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
    return view;
  }

  async chain(vmId: string, repositoryId: string): Promise<ChainState> {
    return (await this.aggregates.load(chainStream(vmId, repositoryId), chainAggregate)).state;
  }

  async delete(restorePointId: string): Promise<string | null> {
    const view = await this.view(restorePointId);
    const root = (await this.repositories.definition(view.repositoryId)).root;
    const state = await this.chain(view.vmId, view.repositoryId);
    if (!pointOf(state, restorePointId)) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
    const touched = await Promise.all(pointAndDescendants(state, restorePointId).flatMap((p) => p.disks.map((d) => realpath(join(root, d.file)).catch(() => join(root, d.file)))));
    const blocker = await this.filesInUse.blocker(touched);
    if (blocker) throw new DomainError('conflict', `restore point ${restorePointId} or a point above it is in use: ${blocker}`);
    await this.aggregates.execute(chainStream(view.vmId, view.repositoryId), chainAggregate, { kind: 'startDelete', restorePointId });
    return this.finishDelete(view.vmId, view.repositoryId, restorePointId);
  }

  private async finishDelete(vmId: string, repositoryId: string, restorePointId: string): Promise<string | null> {
    const stream = chainStream(vmId, repositoryId);
    const state = await this.chain(vmId, repositoryId);
    const pending = state.pending;
    if (!pending || pending.restorePointId !== restorePointId) return null;
    const point = pointOf(state, restorePointId)!;
    const root = (await this.repositories.definition(repositoryId)).root;
    const parent = point.parentId ? pointOf(state, point.parentId) : undefined;
    const childDisks = await deletePointFiles(root, pending, point, childOf(state, restorePointId), parent);
    return (await this.aggregates.execute(stream, chainAggregate, { kind: 'completeDelete', restorePointId, childDisks })).position;
  }

  async verify(restorePointId: string): Promise<string | null> {
    const view = await this.view(restorePointId);
    const root = (await this.repositories.definition(view.repositoryId)).root;
    const state = await this.chain(view.vmId, view.repositoryId);
    const lineage: RestorePoint[] = [];
    for (let p = pointOf(state, restorePointId); p; p = p.parentId ? pointOf(state, p.parentId) : undefined) lineage.unshift(p);
    const problems: string[] = [];
    const warnings: string[] = [];
    for (const disk of lineage.at(-1)!.disks) {
      const links = lineage.map((p) => p.disks.find((d) => d.diskId === disk.diskId)!).map((d) => ({ file: d.file, parentFile: d.parentFile, virtualSize: d.virtualSize, fileBytes: d.fileBytes }));
      const result = await validateChain(root, links);
      problems.push(...result.problems.map((p) => `${disk.diskId}: ${p}`));
      warnings.push(...result.warnings.map((w) => `${disk.diskId}: ${w}`));
    }
    const result = await this.aggregates.execute(chainStream(view.vmId, view.repositoryId), chainAggregate, {
      kind: 'recordVerification',
      restorePointId,
      ok: problems.length === 0,
      problems,
      warnings,
    });
    return result.position;
  }

  async list(vmId: string, repositoryId?: string): Promise<RestorePointView[]> {
    return this.dataSource.getRepository(RestorePointView).find({ where: { vmId, ...(repositoryId ? { repositoryId } : {}) }, order: { chainPosition: 'ASC' } });
  }
}
