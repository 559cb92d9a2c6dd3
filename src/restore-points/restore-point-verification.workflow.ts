import { Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { CommandGateway } from '../projection-runner/command-gateway';
import { validateChain } from '../repositories/qcow2/chain-validator';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { pointOf } from './chain.aggregate';
import { RestorePoint } from './chain.events';
import { ChainStates } from './chain-states';
import { RecordVerificationCommand } from './commands/record-verification.command';
import { GetRestorePointQuery } from './queries/get-restore-point.query';

const READ_MODEL = 'restore-points';

/** Checks every file a restore point reads through, disk by disk, and records what it found. */
@Injectable()
export class RestorePointVerificationWorkflow {
  constructor(
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly chains: ChainStates,
    private readonly repositories: RepositoriesService,
  ) {}

  async verify(restorePointId: string): Promise<void> {
    const view = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    const root = (await this.repositories.definition(view.repositoryId)).root;
    const state = await this.chains.load(view.vmId, view.repositoryId);
    const lineage: RestorePoint[] = [];
    for (let p = pointOf(state, restorePointId); p; p = p.parentId ? pointOf(state, p.parentId) : undefined) lineage.unshift(p);
    const problems: string[] = [];
    const warnings: string[] = [];
    for (const disk of lineage.at(-1)?.disks ?? []) {
      const links = lineage.map((p) => p.disks.find((d) => d.diskId === disk.diskId)!).map((d) => ({ file: d.file, parentFile: d.parentFile, virtualSize: d.virtualSize, fileBytes: d.fileBytes }));
      const result = await validateChain(root, links);
      problems.push(...result.problems.map((p) => `${disk.diskId}: ${p}`));
      warnings.push(...result.warnings.map((w) => `${disk.diskId}: ${w}`));
    }
    await this.gateway.execute(new RecordVerificationCommand(view.vmId, view.repositoryId, restorePointId, problems, warnings), READ_MODEL);
  }
}
