import type { PolicyDefinition, RetentionRules } from '../policy.events';
import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { DomainError } from '../../eventing/domain-error';
import { isImmutabilityRefusal } from '../../restore-points/immutability';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { KeyedMutex } from '../../process/keyed-mutex';
import { causedBy } from '../../eventing/request-context';
import { ProjectionsService } from '../../projection-runner/projections.service';
import { ChainStates } from '../../restore-points/chain-states';
import { RestorePointDeletionWorkflow } from '../../restore-points/restore-point-deletion.workflow';
import { assertRepositoryFits } from '../commands/repository-check';
import { problemsOf } from '../policy.aggregate';
import { DecideRetentionCommand } from './commands/decide-retention.command';
import { DeferPruneCommand } from './commands/defer-prune.command';
import { chainPruneMarks, computePrune, deletionOrder, PruneMark } from './prune';
import { ProtectionData, ProtectionDataQuery, BackupsAwaitingRetentionQuery, VmsWithPointsQuery } from './queries/protection-data.query';
import { RetentionTrigger } from './retention.events';
import { governingPolicies, PolicyRecord, selects, VmIdentity } from './selection';

const READ_MODEL = 'protection-report';
/** How often the workflow looks for backups that completed without a retention decision yet (any hub may have run them). */
const POLL_MS = 1_000;
/** A backup older than this when first seen is left to the next backup's decision (which covers the whole chain anyway). */
const AWAITING_WINDOW_MS = 24 * 3_600_000;
/** A point that was in use is tried again this long after. */
const RETRY_MS = 60_000;

export interface ChainDecision {
  vmId: string;
  repositoryId: string;
  /** The repository keeps its points immutable: chains go whole (wholeChainsOnly), newest point first. */
  immutable: boolean;
  /** Newest first. */
  marks: PruneMark[];
}

export interface ChainOutcome extends ChainDecision {
  /** False when another hub had already decided after the same backup: nothing was deleted here. */
  decided: boolean;
  pruned: string[];
  deferred: { restorePointId: string; reason: string }[];
}

/**
 * Retention as a process manager: after each completed backup of a governed chain, and on request,
 * apply the policy's prune rules to the chain, record the decision, and delete each pruned point
 * oldest first through the chain's own delete (merge into the next point; never a broken chain).
 * A point in use is kept, recorded as deferred, and tried again later.
 */
@Injectable()
export class RetentionWorkflow implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('retention');
  private readonly mutex = new KeyedMutex();
  /** Completed backups this process found governed by no policy: looked at once. */
  private readonly ungoverned = new Set<string>();
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;

  constructor(
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly projections: ProjectionsService,
    private readonly chains: ChainStates,
    private readonly deletion: RestorePointDeletionWorkflow,
    private readonly repositories: RepositoriesService,
  ) {}

  onApplicationBootstrap(): void {
    this.schedule();
  }

  onModuleDestroy(): void {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    for (const t of this.retries.values()) clearTimeout(t);
  }

  /** What the policy's rules would keep and prune in each of its chains now; nothing is recorded or deleted. */
  /** With `rules`, what those rules would decide for the policy's chains instead of its own (a form being edited). */
  async preview(policyId: string, rules?: RetentionRules): Promise<{ policy: PolicyRecord; chains: ChainDecision[] }> {
    await this.projections.waitForCaughtUp(READ_MODEL);
    const data = await this.queries.execute(new ProtectionDataQuery());
    const saved = this.livePolicy(data, policyId);
    const policy = rules ? { ...saved, definition: { ...saved.definition, retention: rules } } : saved;
    const chains: ChainDecision[] = [];
    for (const vmId of await this.chainsOf(policy, data)) chains.push(await this.decision(policy, vmId));
    return { policy, chains };
  }

  /**
   * A policy being created or changed whose rules would prune more than half of a VM's points at their next decision,
   * and more of them than the policy's rules so far, is refused unless `confirmed`: a stolen operator token cannot
   * empty a VM's history with one edit of `keepLast`. A definition the command will refuse anyway (unsound, a
   * repository that does not fit) is left to it, so that its 400 comes first.
   */
  async refuseMassPrune(definition: PolicyDefinition, confirmed: boolean, policyId: string | null = null): Promise<void> {
    if (confirmed || problemsOf(definition).length) return;
    if (!(await assertRepositoryFits(this.repositories, definition).then(() => true, () => false))) return;
    await this.projections.waitForCaughtUp(READ_MODEL);
    const data = await this.queries.execute(new ProtectionDataQuery());
    const pruning = async (policy: PolicyRecord) => {
      const counts = new Map<string, { vmId: string; pruned: number; points: number }>();
      for (const vmId of await this.chainsOf(policy, data)) {
        const { marks } = await this.decision(policy, vmId);
        counts.set(`${vmId}/${policy.definition.repositoryId}`, { vmId, pruned: marks.filter((m) => !m.keep).length, points: marks.length });
      }
      return counts;
    };
    const current = data.policies.find((p) => p.policyId === policyId && p.deletedAt === null);
    const before = current ? await pruning(current) : new Map<string, { pruned: number }>();
    for (const [chain, { vmId, pruned, points }] of await pruning({ policyId: policyId ?? 'proposed', definition, createdAt: new Date(), deletedAt: null })) {
      if (pruned * 2 > points && pruned > (before.get(chain)?.pruned ?? 0)) {
        throw new DomainError('conflict', `these retention rules would prune ${pruned} of the ${points} restore points of VM ${vmId}, more than half: send confirmPrune: true to apply them`);
      }
    }
  }

  /** Decides and prunes every chain of the policy now (`POST /policies/{id}/prune`). */
  async prune(policyId: string, trigger: RetentionTrigger = { kind: 'manual' }): Promise<{ policy: PolicyRecord; chains: ChainOutcome[] }> {
    await this.projections.waitForCaughtUp(READ_MODEL);
    const data = await this.queries.execute(new ProtectionDataQuery());
    const policy = this.livePolicy(data, policyId);
    const chains: ChainOutcome[] = [];
    for (const vmId of await this.chainsOf(policy, data)) chains.push(await this.apply(policy, data, vmId, trigger));
    return { policy, chains };
  }

  private livePolicy(data: ProtectionData, policyId: string): PolicyRecord {
    const policy = data.policies.find((p) => p.policyId === policyId && p.deletedAt === null);
    if (!policy) throw new DomainError('not_found', `policy ${policyId} does not exist`);
    return policy;
  }

  private identity(data: ProtectionData, vmId: string): VmIdentity {
    return data.vms.find((v) => v.vmId === vmId) ?? { vmId, name: null, agentId: null };
  }

  /** The policy's chains: VMs it selects that have restore points in its repository. */
  private async chainsOf(policy: PolicyRecord, data: ProtectionData): Promise<string[]> {
    const vms = await this.queries.execute(new VmsWithPointsQuery(policy.definition.repositoryId));
    return vms.filter((vmId) => selects(policy.definition.vms, this.identity(data, vmId)));
  }

  /** The chain as its events say now; a point being deleted is already gone for retention. */
  private async decision(policy: PolicyRecord, vmId: string): Promise<ChainDecision> {
    const { repositoryId, retention, schedule } = policy.definition;
    const state = await this.chains.load(vmId, repositoryId);
    const immutable = !!(await this.repositories.definition(repositoryId)).immutableDays;
    return { vmId, repositoryId, immutable, marks: chainPruneMarks(state, retention, schedule.timezone, immutable) };
  }

  private apply(policy: PolicyRecord, data: ProtectionData, vmId: string, trigger: RetentionTrigger): Promise<ChainOutcome> {
    const { repositoryId } = policy.definition;
    // One decision at a time per chain in this process; across hubs the chain's own delete refuses a second concurrent delete.
    return this.mutex.run(`${vmId}/${repositoryId}`, async () => {
      const chain = await this.decision(policy, vmId);
      const { retention, schedule } = policy.definition;
      const recorded = await this.commands.execute(
        new DecideRetentionCommand(policy.policyId, vmId, repositoryId, trigger, retention, schedule.timezone, new Date().toISOString(), chain.marks),
      );
      const outcome: ChainOutcome = { ...chain, decided: recorded.decided, pruned: [], deferred: [] };
      if (!recorded.decided) return outcome;
      const others = governingPolicies(data.policies, { policyId: null, repositoryId }, this.identity(data, vmId)).filter((p) => p.policyId !== policy.policyId);
      for (const mark of deletionOrder(chain.marks, chain.immutable)) {
        const keeper = others.find((o) => computePrune(chain.marks, o.definition.retention, o.definition.schedule.timezone).some((m) => m.restorePointId === mark.restorePointId && m.keep));
        const reason = keeper
          ? `kept by policy ${keeper.policyId} (${keeper.definition.name})`
          : await causedBy(recorded.eventIds[0], () => this.deletion.delete(mark.restorePointId, { reason: `pruned by policy ${policy.policyId}` })).then(
              () => null,
              (e: unknown) => (e instanceof DomainError && e.kind === 'not_found' ? null : e instanceof Error ? e.message : String(e)),
            );
        if (reason === null) {
          outcome.pruned.push(mark.restorePointId);
          continue;
        }
        outcome.deferred.push({ restorePointId: mark.restorePointId, reason });
        await causedBy(recorded.eventIds[0], () => this.commands.execute(new DeferPruneCommand(policy.policyId, vmId, repositoryId, mark.restorePointId, reason)));
      }
      if (outcome.deferred.some((d) => !d.reason.startsWith('kept by policy') && !isImmutabilityRefusal(d.reason))) this.retryLater(policy.policyId);
      return outcome;
    });
  }

  private retryLater(policyId: string): void {
    if (this.stopping || this.retries.has(policyId)) return;
    const timer = setTimeout(() => {
      this.retries.delete(policyId);
      this.prune(policyId, { kind: 'retry' }).catch((e) => this.logger.warn(`retrying the prune of policy ${policyId}: ${String(e)}`));
    }, RETRY_MS);
    timer.unref();
    this.retries.set(policyId, timer);
  }

  private schedule(): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.afterBackups()
        .catch((e) => this.logger.warn(`retention after backups: ${String(e)}`))
        .finally(() => this.schedule());
    }, POLL_MS);
    this.timer.unref();
  }

  /** Every completed backup gets one decision per governing policy, whichever hub ran it or sees it first. */
  private async afterBackups(): Promise<void> {
    const awaiting = (await this.queries.execute(new BackupsAwaitingRetentionQuery(AWAITING_WINDOW_MS))).filter((b) => !this.ungoverned.has(b.jobId));
    if (awaiting.length === 0) return;
    const data = await this.queries.execute(new ProtectionDataQuery());
    for (const backup of awaiting) {
      if (this.stopping) return;
      const policies = governingPolicies(data.policies, backup, this.identity(data, backup.vmId)).filter((p) => p.definition.enabled || p.policyId === backup.policyId);
      if (policies.length === 0) {
        this.ungoverned.add(backup.jobId);
        continue;
      }
      for (const policy of policies) {
        await this.apply(policy, data, backup.vmId, { kind: 'backup', backupId: backup.jobId }).catch((e) => this.logger.error(`retention of policy ${policy.policyId} after backup ${backup.jobId}: ${String(e)}`));
      }
    }
  }
}
