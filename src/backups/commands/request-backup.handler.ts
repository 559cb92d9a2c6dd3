import { CommandHandler, EventBus, ICommandHandler } from '@nestjs/cqrs';
import { AgentsService } from '../../agents/agents.service';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { backupJobAggregate, isTerminal } from '../backup-job.aggregate';
import { backupStream } from '../backup.events';
import { BackupJobQueued } from '../backup.notices';
import { HolderState, holderState, VmClaimState, vmClaimAggregate } from '../vm-claim.aggregate';
import { vmClaimStream } from '../vm-claim.events';
import { BackupRequestedResult, RequestBackupCommand } from './request-backup.command';

/**
 * One unfinished job per VM, decided by the event store: the request first claims the VM on its
 * `vm-backups-<vmId>` stream (an append with the expected revision, so of two racing requests, in
 * one hub or in two, exactly one gets it), and only then records BackupRequested. The loser records nothing.
 */
@CommandHandler(RequestBackupCommand)
export class RequestBackupHandler implements ICommandHandler<RequestBackupCommand, BackupRequestedResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly agents: AgentsService,
    private readonly repositories: RepositoriesService,
    private readonly notices: EventBus,
  ) {}

  async execute(command: RequestBackupCommand): Promise<BackupRequestedResult> {
    const { vmId, repositoryId, requestedType, jobId } = command;
    const vm = await this.agents.vm(vmId);
    await this.repositories.usable(repositoryId);
    const claims = vmClaimStream(vmId);
    const { state: claim } = await this.aggregates.load(claims, vmClaimAggregate);
    // A claim already naming this job is this request's own earlier attempt (a policy slot requested again): no other holder.
    const holder = claim.jobId && claim.jobId !== jobId ? { jobId: claim.jobId, state: await this.holder(claim, command) } : null;
    await this.aggregates.execute(claims, vmClaimAggregate, { kind: 'claim', vmId, jobId, at: new Date().toISOString(), holder }, command);
    try {
      const result = await this.aggregates.execute(backupStream(jobId), backupJobAggregate, { kind: 'request', jobId, vmId, agentId: vm.agentId, repositoryId, requestedType }, command);
      this.notices.publish(new BackupJobQueued(jobId, vmId));
      return { jobId, eventIds: result.eventIds, position: result.position };
    } catch (error) {
      await this.aggregates.execute(claims, vmClaimAggregate, { kind: 'release', vmId, jobId, reason: `the request was not recorded: ${String(error)}` }, command).catch(() => undefined);
      throw error;
    }
  }

  /**
   * What became of the job holding the claim, from its own stream. A claim whose job was never recorded
   * (its request died in between) is voided on that job's stream first, so that request, should it
   * still arrive, is refused there instead of making a second job.
   */
  private async holder(claim: VmClaimState, command: RequestBackupCommand): Promise<HolderState> {
    const stream = backupStream(claim.jobId!);
    const { state: job } = await this.aggregates.load(stream, backupJobAggregate);
    const seen = holderState({ exists: job.jobId !== null, terminal: isTerminal(job), voided: job.voided }, claim.claimedAt, new Date());
    if (seen !== 'maybe-never') return seen;
    const { state } = await this.aggregates.execute(stream, backupJobAggregate, { kind: 'void', jobId: claim.jobId!, reason: `its request was not recorded within the grace after claiming VM` }, command);
    return state.jobId === null ? 'never' : isTerminal(state) ? 'over' : 'running';
  }
}
