import { Injectable } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { ChainState } from './chain.aggregate';
import { RestorePoint } from './chain.events';
import { ChainStates } from './chain-states';
import { AddRestorePointCommand } from './commands/add-restore-point.command';
import { GetRestorePointQuery } from './queries/get-restore-point.query';
import { RestorePointRecord } from './queries/restore-point.record';

/** What other features ask of the chains: add the point a backup wrote, read a chain or a point. */
@Injectable()
export class RestorePointsService {
  constructor(
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly chains: ChainStates,
  ) {}

  async add(point: RestorePoint): Promise<string | null> {
    return (await this.commands.execute(new AddRestorePointCommand(point))).position;
  }

  view(restorePointId: string): Promise<RestorePointRecord> {
    return this.queries.execute(new GetRestorePointQuery(restorePointId));
  }

  chain(vmId: string, repositoryId: string): Promise<ChainState> {
    return this.chains.load(vmId, repositoryId);
  }
}
