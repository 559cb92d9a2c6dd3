import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { AgentTunnel } from '../../agents/agent-tunnel.service';
import { ListVmsQuery, VmSummary } from '../../agents/queries/list-vms.query';
import { HUB_INSTANCE } from '../../config/hub-instance';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { Ticker } from '../../eventing/ticker';
import { causedBy, ownStory, runWithContext, SYSTEM_ACTOR } from '../../eventing/request-context';
import { parseCron } from '../../policies/calendar';
import { Clock } from '../../policies/clock';
import { PolicyState, selectVms } from '../../policies/policy.aggregate';
import { planSlots } from '../../policies/policy-slots.aggregate';
import { PolicyStates } from '../../policies/policy-states';
import { ListPoliciesQuery } from '../../policies/queries/list-policies.query';
import { ProjectionsService } from '../../projection-runner/projections.service';
import { ListRestorePointsQuery } from '../../restore-points/queries/list-restore-points.query';
import { ListRestoresQuery } from '../queries/list-restores.query';
import { RestoreReader } from '../restore.reader';
import { RestoreWorkflow } from '../restore.workflow';
import { DecideDrillSlotCommand } from './decide-drill-slot.command';
import { DrillChoice, drillSlotsAggregate } from './drill-slots.aggregate';
import { DRILL_SLOT_FIRED, DrillSlotFired, drillSlotsStream } from './drill-slots.events';

/** How often each hub looks for due drill slots. */
const TICK_MS = 1000;

/**
 * Drills a policy schedules (`drill: {cron}`): at each slot, the newest point of each of its VMs is booted on
 * the drill host. A hub plans only the hosts whose agents hold a session with it (a drill needs the agent),
 * and the slots stream of each policy and host decides which hub takes a slot, so each is drilled once. A
 * drill still running when the next slot comes is not doubled: that VM's slot is skipped, saying so.
 */
@Injectable()
export class DrillSchedulerWorkflow implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('drill-scheduler');
  private readonly ticker = new Ticker(TICK_MS, (e) => this.logger.error(`drill scheduler tick failed: ${String(e)}`));

  constructor(
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly aggregates: AggregateRepository,
    private readonly states: PolicyStates,
    private readonly tunnel: AgentTunnel,
    private readonly restores: RestoreWorkflow,
    private readonly reader: RestoreReader,
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

  private async tick(): Promise<void> {
    const policies = (await this.queries.execute(new ListPoliciesQuery())).filter((p) => p.enabled && p.drill);
    if (!policies.length) return;
    const vms = await this.queries.execute(new ListVmsQuery());
    for (const { policyId } of policies) {
      if (this.ticker.stopping) return;
      await this.schedule(policyId, vms).catch((e) => {
        if (!(e instanceof DomainError && e.kind === 'not_found')) this.logger.error(`scheduling the drills of policy ${policyId} failed: ${String(e)}`);
      });
    }
  }

  /** Each drill host of the policy whose agent is connected here: its due slot taken, and its drills requested. */
  private async schedule(policyId: string, allVms: VmSummary[]): Promise<void> {
    const policy = await this.states.policy(policyId);
    const definition = policy.definition!;
    const drill = definition.drill;
    if (!definition.enabled || !drill || !policy.drillSince) return;
    const hosts = new Map<string, VmSummary[]>();
    for (const vm of selectVms(definition, allVms)) {
      const host = drill.agentId ?? vm.agentId;
      hosts.set(host, [...(hosts.get(host) ?? []), vm]);
    }
    for (const [agentId, vms] of hosts) {
      if (!this.tunnel.isConnected(agentId)) continue;
      await runWithContext({ correlationId: randomUUID(), actor: SYSTEM_ACTOR }, () => this.scheduleHost(policy, agentId, vms));
    }
  }

  private async scheduleHost(policy: PolicyState, agentId: string, vms: VmSummary[]): Promise<void> {
    const policyId = policy.policyId!;
    const { drill, schedule, repositoryId } = policy.definition!;
    const { state } = await this.aggregates.load(drillSlotsStream(policyId, agentId), drillSlotsAggregate);
    const from = [state.lastSlot, policy.drillSince].filter((s): s is string => s !== null).sort().at(-1)!;
    const now = this.clock.now();
    const plan = planSlots(parseCron(drill!.cron), schedule.timezone, 'once', new Date(from), now);
    if (!plan) return;
    const fire = plan.fire[0] ?? null;
    // a late newest slot means no hub running the scheduler held this host's session until now
    const missed = plan.missed && fire?.catchUp ? { ...plan.missed, reason: `no hub running the scheduler held a session of agent ${agentId}` } : plan.missed;
    const drills = fire ? await Promise.all(vms.map((vm) => this.choose(vm.vmId, repositoryId))) : [];
    const result = await this.commands.execute(
      new DecideDrillSlotCommand({ kind: 'fire', policyId, agentId, basedOn: state.lastSlot, missed, fire, drills, at: now.toISOString(), hubInstance: this.instance }),
    );
    await Promise.all(
      result.events.map((event, i) => (event.type === DRILL_SLOT_FIRED ? causedBy(result.eventIds[i], () => this.request(event.data, drill!.timeoutSeconds)) : undefined)),
    );
  }

  /** The VM's newest point in the policy's repository, unless there is none or its previous drill still runs. */
  private async choose(vmId: string, repositoryId: string): Promise<DrillChoice> {
    const running = (await this.queries.execute(new ListRestoresQuery({ vmId, unfinished: true }))).find((r) => r.target.kind === 'drill');
    if (running) return { vmId, skip: `its previous drill (restore ${running.restoreId}) is still running` };
    const newest = (await this.queries.execute(new ListRestorePointsQuery(vmId, repositoryId)))
      .filter((p) => p.status === 'available')
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
      .at(-1);
    if (!newest) return { vmId, skip: `it has no restore point in repository ${repositoryId}` };
    return { vmId, restorePointId: newest.restorePointId, restoreId: randomUUID() };
  }

  /** The drill the slot fired, requested as an operator's would be; a refusal is recorded on the slot with its reason. */
  private async request(fired: DrillSlotFired['data'], timeoutSeconds: number): Promise<void> {
    const { policyId, agentId, slot, vmId, restorePointId, restoreId } = fired;
    try {
      await ownStory(() => this.restores.request({ restorePointId, agentId, mode: 'instant', target: { kind: 'drill', timeoutSeconds }, definition: null, force: false, restoreId }));
    } catch (error) {
      // recorded after all (the read model's wait failed, say): the drill runs, nothing to skip
      if (!(error instanceof DomainError) && (await this.reader.get(restoreId).then(() => true, () => false))) return;
      const reason = error instanceof Error ? error.message : String(error);
      this.logger.warn(`policy ${policyId}: the drill of ${vmId} at slot ${slot} was not started: ${reason}`);
      await this.commands.execute(new DecideDrillSlotCommand({ kind: 'skip', policyId, agentId, slot, vmId, restoreId, reason }));
    }
  }
}
