import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { ListVmsQuery } from '../agents/queries/list-vms.query';
import { BackupJobReader } from '../backups/backup-job.reader';
import { RequestBackupCommand } from '../backups/commands/request-backup.command';
import { UNRECORDED_CLAIM_GRACE_MS } from '../backups/vm-claim.aggregate';
import { HUB_INSTANCE } from '../config/hub-instance';
import { DomainError } from '../eventing/domain-error';
import { Ticker } from '../eventing/ticker';
import { causedBy, ownStory, runWithContext, SYSTEM_ACTOR } from '../eventing/request-context';
import { ProjectionsService } from '../projection-runner/projections.service';
import { parseCron } from './calendar';
import { Clock } from './clock';
import { RetryPolicySlotCommand } from './commands/retry-policy-slot.command';
import { SkipPolicySlotCommand } from './commands/skip-policy-slot.command';
import { SlotsResult } from './commands/slots-result';
import { TakePolicySlotsCommand } from './commands/take-policy-slots.command';
import { PolicyState, selectVms } from './policy.aggregate';
import { OpenSlot, planSlots } from './policy-slots.aggregate';
import { SLOT_FIRED, SlotFired } from './policy-slots.events';
import { PolicyStates } from './policy-states';
import { ListPoliciesQuery } from './queries/list-policies.query';

/** How often each hub looks for due slots: a slot starts within this of its time. */
const TICK_MS = 500;
/** A slot's request not recorded this long after it was made died with its hub: another hub requests it again. */
const UNRECORDED_REQUEST_GRACE_MS = UNRECORDED_CLAIM_GRACE_MS;

export interface SlotOutcome {
  vmId: string;
  jobId: string;
  status: 'requested' | 'skipped';
  reason: string | null;
}

/**
 * The scheduler: every hub runs it, and the event store decides which hub takes each slot. Each tick
 * plans a policy's due slots from its slots stream and appends them with that stream's expected
 * revision; only the hub whose append landed requests the backups. A request that was never recorded
 * (its hub died in between) is made again under the same job id by one hub, so no slot is lost or doubled.
 */
@Injectable()
export class SchedulerWorkflow implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('scheduler');
  private readonly ticker = new Ticker(TICK_MS, (e) => this.logger.error(`scheduler tick failed: ${String(e)}`));
  /** Jobs whose request this hub saw recorded: their slots need no more care. */
  private readonly recorded = new Set<string>();
  /** Requests this hub is making right now: not dead, however long they take. */
  private readonly requesting = new Set<string>();

  constructor(
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly states: PolicyStates,
    private readonly jobs: BackupJobReader,
    private readonly clock: Clock,
    private readonly projections: ProjectionsService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.projections.waitForCaughtUp('policies');
    this.ticker.start(() => this.tick());
  }

  async onModuleDestroy(): Promise<void> {
    await this.ticker.stop();
  }

  /** `POST /policies/{id}/run`: a slot now for every VM of the policy, outside its calendar. */
  async runNow(policyId: string): Promise<{ policyId: string; slot: string; jobs: SlotOutcome[] }> {
    const policy = await this.states.policy(policyId);
    const now = this.clock.now().toISOString();
    const vms = await this.vmsOf(policy);
    const result = await this.commands.execute(new TakePolicySlotsCommand({ kind: 'run', policyId, slot: now, vms, fullEvery: policy.definition!.fullEvery, at: now, hubInstance: this.instance }));
    return { policyId, slot: now, jobs: await this.requestAll(policy, result) };
  }

  private async tick(): Promise<void> {
    for (const { policyId, enabled } of await this.queries.execute(new ListPoliciesQuery())) {
      if (!enabled || this.ticker.stopping) continue;
      await runWithContext({ correlationId: randomUUID(), actor: SYSTEM_ACTOR }, () => this.schedule(policyId)).catch((e) => {
        if (!(e instanceof DomainError && e.kind === 'not_found')) this.logger.error(`scheduling policy ${policyId} failed: ${String(e)}`);
      });
    }
  }

  /** The policy's due slots, taken if no other hub took them first; then the care of requests that were never recorded. */
  private async schedule(policyId: string): Promise<void> {
    const policy = await this.states.policy(policyId);
    const definition = policy.definition!;
    if (!definition.enabled) return;
    const slots = await this.states.slots(policyId);
    const now = this.clock.now();
    const from = [slots.lastSlot, policy.scheduleSince].filter((s): s is string => s !== null).sort().at(-1)!;
    const { cron, timezone, catchUp } = definition.schedule;
    const plan = planSlots(parseCron(cron), timezone, catchUp, new Date(from), now);
    if (plan) {
      const vms = plan.fire.length ? await this.vmsOf(policy) : [];
      const result = await this.commands.execute(
        new TakePolicySlotsCommand({
          kind: 'fire',
          policyId,
          basedOn: slots.lastSlot,
          missed: plan.missed,
          fire: plan.fire,
          vms: plan.fire.map(() => vms.map((vm) => ({ vmId: vm.vmId, jobId: randomUUID() }))),
          fullEvery: definition.fullEvery,
          at: now.toISOString(),
          hubInstance: this.instance,
        }),
      );
      await this.requestAll(policy, result);
    }
    for (const open of (await this.states.slots(policyId)).open) await this.lookAfter(policy, open, now);
  }

  private async vmsOf(policy: PolicyState): Promise<{ vmId: string; jobId: string }[]> {
    return selectVms(policy.definition!, await this.queries.execute(new ListVmsQuery())).map((vm) => ({ vmId: vm.vmId, jobId: randomUUID() }));
  }

  /** Requests the jobs of the slots this hub just took, each caused by its SlotFired. */
  private async requestAll(policy: PolicyState, taken: SlotsResult): Promise<SlotOutcome[]> {
    const outcomes: SlotOutcome[] = [];
    for (const [i, event] of taken.events.entries()) {
      if (event.type !== SLOT_FIRED) continue;
      outcomes.push(await causedBy(taken.eventIds[i], () => this.request(policy, event.data)));
    }
    return outcomes;
  }

  private async request(policy: PolicyState, fired: Pick<SlotFired['data'], 'slot' | 'vmId' | 'jobId' | 'requestedType'>): Promise<SlotOutcome> {
    const { slot, vmId, jobId, requestedType } = fired;
    const policyId = policy.policyId!;
    this.requesting.add(jobId);
    try {
      await ownStory(() => this.commands.execute(new RequestBackupCommand(vmId, policy.definition!.repositoryId, requestedType, jobId)));
      this.recorded.add(jobId);
      return { vmId, jobId, status: 'requested', reason: null };
    } catch (error) {
      if (!(error instanceof DomainError)) {
        // Maybe recorded, maybe not: the care of open slots finds out and requests again if it was not.
        this.logger.warn(`requesting the backup of ${vmId} for policy ${policyId} slot ${slot} failed: ${String(error)}`);
        return { vmId, jobId, status: 'requested', reason: String(error) };
      }
      if (await this.jobs.find(jobId)) {
        this.recorded.add(jobId);
        return { vmId, jobId, status: 'requested', reason: null };
      }
      await this.commands.execute(new SkipPolicySlotCommand({ kind: 'skip', policyId, slot, vmId, jobId, reason: error.message }));
      return { vmId, jobId, status: 'skipped', reason: error.message };
    } finally {
      this.requesting.delete(jobId);
    }
  }

  /** A taken slot whose job was not recorded within the grace: one hub records a retry and requests it again. */
  private async lookAfter(policy: PolicyState, open: OpenSlot, now: Date): Promise<void> {
    if (this.recorded.has(open.jobId) || this.requesting.has(open.jobId)) return;
    if (await this.jobs.find(open.jobId)) {
      this.recorded.add(open.jobId);
      return;
    }
    if (now.getTime() - Date.parse(open.at) < UNRECORDED_REQUEST_GRACE_MS) return;
    const { slot, vmId, jobId, requestedType, attempt } = open;
    const retried = await this.commands.execute(new RetryPolicySlotCommand({ kind: 'retry', policyId: policy.policyId!, slot, vmId, jobId, attempt, at: now.toISOString(), hubInstance: this.instance }));
    if (!retried.events.length) return;
    this.logger.warn(`policy ${policy.policyId} slot ${slot}: the request of job ${jobId} for ${vmId} was never recorded; requesting it again`);
    await causedBy(retried.eventIds[0], () => this.request(policy, { slot, vmId, jobId, requestedType }));
  }
}
