import { Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { IssueApiTokenCommand } from '../auth/tokens/commands/issue-api-token.command';
import { RevokeApiTokenCommand } from '../auth/tokens/commands/revoke-api-token.command';
import { CommandGateway } from '../projection-runner/command-gateway';
import { agentTokenName, checkRegistration } from './agent.aggregate';
import { RegisterAgentCommand, RegisteredAgent } from './commands/register-agent.command';
import { parsePublicKey } from './public-key';
import { AgentRegistrationConflictsQuery } from './queries/agent-registration-conflicts.query';

/**
 * Registration spans two streams: the agent's API token is issued first because the agent records
 * its id. A request that would be refused is refused before a token exists; one that loses a race
 * afterwards revokes the token it got, so no unowned token stays valid.
 */
@Injectable()
export class AgentRegistration {
  constructor(
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
  ) {}

  /** The token is in the answer this once; events and read models hold only its hash. */
  async register(name: string, publicKey: string): Promise<Omit<RegisteredAgent, 'position'> & { token: string }> {
    const parsed = parsePublicKey(publicKey);
    checkRegistration(name, parsed, parsed ? await this.queries.execute(new AgentRegistrationConflictsQuery(name, parsed.fingerprint)) : { name: false, key: false });
    // The new token must work on the agent's very next request, so both read models are waited for.
    const issued = await this.gateway.execute(new IssueApiTokenCommand(agentTokenName(name), 'agent'), 'api-tokens');
    try {
      const agent = await this.gateway.execute(new RegisterAgentCommand(name, publicKey, issued.tokenId), 'agents');
      return { ...agent, token: issued.token };
    } catch (error) {
      await this.gateway.execute(new RevokeApiTokenCommand(issued.tokenId), 'api-tokens');
      throw error;
    }
  }
}
