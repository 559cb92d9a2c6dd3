import { CommandHandler, EventBus, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { AgentsService } from '../../agents/agents.service';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { KeyedMutex } from '../../eventing/keyed-mutex';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { backupJobAggregate } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
import { BackupJobQueued } from '../backup.notices';
import { JobsInProcess } from '../jobs-in-process';
import { UnfinishedBackupJobsQuery } from '../queries/unfinished-backup-jobs.query';
import { BackupRequestedResult, RequestBackupCommand } from './request-backup.command';

/**
 * One unfinished job per VM: requests for one VM are taken one at a time here, and the busy
 * job is looked up among this process's jobs (not yet in any read model) and every hub's.
 */
@CommandHandler(RequestBackupCommand)
export class RequestBackupHandler implements ICommandHandler<RequestBackupCommand, BackupRequestedResult> {
  private readonly perVm = new KeyedMutex();

  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly agents: AgentsService,
    private readonly repositories: RepositoriesService,
    private readonly queries: QueryBus,
    private readonly here: JobsInProcess,
    private readonly notices: EventBus,
  ) {}

  async execute(command: RequestBackupCommand): Promise<BackupRequestedResult> {
    const { vmId, repositoryId, requestedType } = command;
    const vm = await this.agents.vm(vmId);
    await this.repositories.definition(repositoryId);
    return this.perVm.run(vmId, async () => {
      const busyJobId = this.here.ofVm(vmId) ?? (await this.queries.execute(new UnfinishedBackupJobsQuery(vmId)))[0]?.jobId ?? null;
      const jobId = randomUUID();
      const result = await this.aggregates.execute(backupStream(jobId), backupJobAggregate, { kind: 'request', jobId, vmId, agentId: vm.agentId, repositoryId, requestedType, busyJobId }, command);
      this.notices.publish(new BackupJobQueued(jobId, vmId));
      return { jobId, eventIds: result.eventIds, position: result.position };
    });
  }
}
