import { Command as CqrsCommand } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';

/**
 * Every state change is one of these, sent through the CommandBus to exactly one handler.
 * Its id is recorded as `commandId` on every event the handler appends, and is the
 * `causationId` of those events unless the command was itself caused by an event.
 */
export abstract class Command<R = unknown> extends CqrsCommand<R> {
  readonly commandId: string = randomUUID();
}

/** What a handler that appended returns: the global position callers can wait on for read-your-writes. */
export interface Appended {
  position: string | null;
}
