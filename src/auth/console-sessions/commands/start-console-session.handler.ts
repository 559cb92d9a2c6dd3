import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { hashToken } from '../../token-hash';
import { consoleSessionAggregate } from '../console-session.aggregate';
import { consoleSessionStream } from '../console-session.events';
import { csrfTokenFor, newSessionSecret, SESSION_LIFETIME_MS, sessionCookieValue } from '../session-cookie';
import { StartConsoleSessionCommand, StartedConsoleSession } from './start-console-session.command';

@CommandHandler(StartConsoleSessionCommand)
export class StartConsoleSessionHandler implements ICommandHandler<StartConsoleSessionCommand, StartedConsoleSession> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: StartConsoleSessionCommand): Promise<StartedConsoleSession> {
    const sessionId = randomUUID();
    const secret = newSessionSecret();
    const expiresAt = new Date(Date.now() + SESSION_LIFETIME_MS);
    const decision = { kind: 'start', sessionId, secretHash: hashToken(secret), tokenHash: command.tokenHash, expiresAt: expiresAt.toISOString() } as const;
    const result = await this.aggregates.execute(consoleSessionStream(sessionId), consoleSessionAggregate, decision, command);
    return { sessionId, cookie: sessionCookieValue(sessionId, secret), csrfToken: csrfTokenFor(secret), expiresAt, position: result.position };
  }
}
