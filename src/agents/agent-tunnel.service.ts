import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { HUB_INSTANCE } from '../config/hub-instance';
import { DomainError } from '../eventing/domain-error';
import { repeatAfter } from '../process/repeat';
import { HubLiveness, OwnersGone } from '../projection-runner/hub-liveness';
import { ProjectionsService } from '../projection-runner/projections.service';
import { TunnelServer } from '../tunnel';
import { AgentStates } from './agent-states';
import { RecordAgentConnectedCommand } from './commands/record-agent-connected.command';
import { RecordAgentDisconnectedCommand } from './commands/record-agent-disconnected.command';
import { AgentByFingerprintQuery } from './queries/agent-by-fingerprint.query';
import { ListAgentsQuery } from './queries/list-agents.query';
import { mayOpenDirect } from './tunnel-policy';
import { TokenVerifier } from '../auth/token-verifier';

/** Sessions of hubs pulling restore points (a sync token as the SSH password) are keyed apart from agents'. */
const SYNC_PRINCIPAL = 'sync:';
const isSyncSession = (id: string) => id.startsWith(SYNC_PRINCIPAL);

/**
 * The hub's SSH endpoint for agents. An agent may reach the hub API, nothing else (see
 * tunnel-policy.ts); the hub reaches the agent's API through the reverse forward of the agent's
 * live session.
 */
@Injectable()
export class AgentTunnel implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('agent-tunnel');
  readonly events = new EventEmitter();
  private server!: TunnelServer;
  private readonly owners: OwnersGone;
  private goneSweep?: { stop(): Promise<void> };

  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly agents: AgentStates,
    private readonly projections: ProjectionsService,
    private readonly tokens: TokenVerifier,
    liveness: HubLiveness,
  ) {
    this.owners = new OwnersGone(liveness, config.goneHubAfterMs);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.projections.waitForCaughtUp('agents');
    await this.disconnectStale();
    this.server = new TunnelServer({
      hostKeyFile: join(this.config.dataDir, 'ssh_host_ed25519_key'),
      port: this.config.sshPort,
      bind: this.config.sshBind,
      authorize: (key) => this.queries.execute(new AgentByFingerprintQuery(key.fingerprint)),
      // Another hub logs in with a token of role sync and reaches the API alone, where that role reads restore points and nothing else.
      authorizePassword: async (_username, password) => {
        const principal = await this.tokens.principalFor(password);
        return principal?.role === 'sync' ? { agentId: `${SYNC_PRINCIPAL}${principal.actor}:${randomUUID()}` } : null;
      },
      apiPort: this.config.apiPort,
      allowDirect: async (_agentId, host, port) => mayOpenDirect({ host, port }, this.config.apiPort),
      onConnected: (agentId, session) => {
        if (isSyncSession(agentId)) return void this.logger.log(`sync session ${agentId} from ${session.remoteAddress}`);
        void this.commands
          .execute(new RecordAgentConnectedCommand(agentId, session.remoteAddress, this.instance))
          .catch((e) => this.logger.error(`recording the connection of agent ${agentId} failed: ${String(e)}`));
        this.events.emit('connected', agentId);
      },
      onDisconnected: (agentId, reason) => {
        if (isSyncSession(agentId)) return void this.logger.log(`sync session ${agentId} ended: ${reason}`);
        void this.commands.execute(new RecordAgentDisconnectedCommand(agentId, reason)).catch((e) => this.logger.error(`recording the disconnection of agent ${agentId} failed: ${String(e)}`));
        this.events.emit('disconnected', agentId, reason);
      },
      log: {
        debug: (fields, message) => this.logger.debug(`${message} ${JSON.stringify(fields)}`),
        info: (fields, message) => this.logger.log(`${message} ${JSON.stringify(fields)}`),
        warn: (fields, message) => this.logger.warn(`${message} ${JSON.stringify(fields)}`),
        error: (fields, message) => this.logger.error(`${message} ${JSON.stringify(fields)}`),
      },
    });
    await this.server.start().catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') throw new Error(`SENDENSE_SSH_PORT ${this.config.sshPort} on ${this.config.sshBind} is already in use by another process`);
      throw error;
    });
    this.logger.log(`SSH endpoint for agents on ${this.config.sshBind}:${this.server.port} (host key ${this.server.hostKeyFingerprint})`);
    this.goneSweep = repeatAfter(this.config.goneHubCheckMs, () => this.disconnectGone());
  }

  async onModuleDestroy(): Promise<void> {
    await this.goneSweep?.stop();
    await this.server?.stop();
  }

  endpoint(): { port: number; hostKeyFingerprint: string } {
    return { port: this.server.port!, hostKeyFingerprint: this.server.hostKeyFingerprint! };
  }

  /** Resolves true once the agent has a live session (it may be reconnecting after a restart), false after timeoutMs. */
  async waitConnected(agentId: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.isConnected(agentId)) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 100));
    }
    return true;
  }

  isConnected(agentId: string): boolean {
    return this.server?.session(agentId) !== undefined;
  }

  /** Base URL of the agent's API through its tunnel. */
  async agentApiUrl(agentId: string): Promise<string> {
    const session = this.server?.session(agentId);
    if (!session) throw new DomainError('conflict', `agent ${agentId} is not connected`);
    return session.waitForAgentApi(5_000);
  }

  /** Sessions with a previous run of this hub process ended with it, whatever the events last said. */
  private async disconnectStale(): Promise<void> {
    for (const agent of await this.queries.execute(new ListAgentsQuery())) {
      if (!agent.connected) continue;
      const state = await this.agents.of(agent.agentId);
      if (state.connectedVia === this.instance) await this.commands.execute(new RecordAgentDisconnectedCommand(agent.agentId, 'the hub restarted', this.instance));
    }
  }

  /**
   * Sessions recorded through a hub process that is gone for good ended with it, and nothing recorded it: the agent
   * read connected there, so every other hub left its queued jobs to that process, which never took them.
   */
  private async disconnectGone(): Promise<void> {
    const held: { agentId: string; via: string }[] = [];
    for (const agent of await this.queries.execute(new ListAgentsQuery())) {
      if (!agent.connected) continue;
      const { connectedVia } = await this.agents.of(agent.agentId);
      if (connectedVia && connectedVia !== this.instance) held.push({ agentId: agent.agentId, via: connectedVia });
    }
    const gone = await this.owners.sweep(held.map((h) => h.via));
    for (const { agentId, via } of held.filter((h) => gone.has(h.via))) {
      const reason = `its hub process ${via} stopped and did not come back`;
      this.logger.warn(`agent ${agentId}: ${reason}; its session is recorded as ended`);
      await this.commands.execute(new RecordAgentDisconnectedCommand(agentId, reason, via)).catch((e) => this.logger.error(`recording the end of agent ${agentId}'s session failed: ${String(e)}`));
    }
  }
}
