import { IEvent } from '@nestjs/cqrs';
import { MountTarget } from './restore-mount.events';

/**
 * In-process word that a handler appended to a restore mount's stream, published after the
 * append committed. The workflow takes its next step from it; a notice lost with a crashed
 * process is made good at the next start, which releases every mount the events still show active.
 */
export class RestoreMountAppended implements IEvent {
  constructor(
    readonly target: MountTarget,
    readonly events: { id: string; type: string; data: Record<string, unknown> }[],
    /** The story the events belong to. */
    readonly correlationId: string,
  ) {}
}
