import { Query } from '@nestjs/cqrs';

export interface AgentSummary {
  agentId: string;
  name: string;
  fingerprint: string;
  connected: boolean;
  remoteAddress: string | null;
  lastSeenAt: Date | null;
  registeredAt: Date;
}

/** Every registered agent, oldest registration first. */
export class ListAgentsQuery extends Query<AgentSummary[]> {}
