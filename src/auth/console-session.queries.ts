import { Inject } from '@nestjs/common';
import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { ActiveConsoleSession, ConsoleSessionQuery } from './queries/console-session.query';
import { CONSOLE_SESSION_STARTED, consoleSessionStream, ConsoleSessionStarted } from './console-sessions/console-session.events';

/**
 * Read from the event store on every request, not from a read model nor a per-process map: a log-in on one hub works
 * on every hub sharing the store behind the same address, and a log-out ends the cookie on all of them at once
 * (one indexed row: the stream's last event).
 */
@QueryHandler(ConsoleSessionQuery)
export class ConsoleSessionHandler implements IQueryHandler<ConsoleSessionQuery, ActiveConsoleSession | null> {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async execute({ sessionId }: ConsoleSessionQuery): Promise<ActiveConsoleSession | null> {
    const [last] = await this.store.readStream(consoleSessionStream(sessionId), { direction: 'backwards', maxCount: 1 });
    if (!last || last.type !== CONSOLE_SESSION_STARTED) return null;
    const { secretHash, tokenHash, expiresAt } = last.data as ConsoleSessionStarted['data'];
    return { sessionId, secretHash, tokenHash, expiresAt: new Date(expiresAt) };
  }
}
