import type { CommandBus } from '@nestjs/cqrs';
import type { EventStore } from '../event-store/event-store.port';
import type { Command } from './command';
import { DomainError } from './domain-error';
import { causedBy, runWithContext, SYSTEM_ACTOR } from './request-context';

/**
 * One job's audit story: the correlation id its request recorded (a job queued behind others runs under its own, not
 * under whichever request started the queue), and the event the next step is caused by.
 */
export interface Story {
  correlationId: string;
  cause: string;
}

/** What a job's handlers answer: what they appended (the next step's cause) and the job now. */
export interface JobStepResult<S> {
  eventIds: string[];
  state: S;
}

/**
 * A process manager's steps told as its job's story, one stream per job (`streamOf`): every command it sends and every
 * side effect it records carries the job's correlation id, each caused by the job's latest event.
 */
export class JobStories<S> {
  constructor(
    private readonly store: EventStore,
    private readonly commands: CommandBus,
    private readonly streamOf: (id: string) => string,
    /** The job as a 404 names it, e.g. `backup job`. */
    private readonly what: string,
  ) {}

  /** The job's story starts at its stream's first event, whose correlation id every later event of the job carries. */
  async open(id: string): Promise<Story> {
    const [requested] = await this.store.readStream(this.streamOf(id), { maxCount: 1 });
    if (!requested) throw new DomainError('not_found', `${this.what} ${id} does not exist`);
    return { correlationId: requested.metadata.correlationId, cause: requested.id };
  }

  /** Steps that follow the agent's reports (or a cancel) are caused by the newest event of the job. */
  async catchUp(id: string, story: Story): Promise<void> {
    const [newest] = await this.store.readStream(this.streamOf(id), { direction: 'backwards', maxCount: 1 });
    if (newest) story.cause = newest.id;
  }

  /** Whatever the job does, and whatever it makes other features record, carries the job's correlation id. */
  within<T>(story: Story, work: () => Promise<T>): Promise<T> {
    return runWithContext({ correlationId: story.correlationId, actor: SYSTEM_ACTOR, causationId: story.cause }, work);
  }

  /** A step's side effect, recorded (by whichever feature records it) as caused by the story's latest event. */
  step<T>(story: Story, work: () => Promise<T>): Promise<T> {
    return causedBy(story.cause, work, story.correlationId);
  }

  /** A step of the job: its command is caused by the story's latest event, and its own events become the cause of the next step. */
  async send(story: Story, command: Command<JobStepResult<S>>): Promise<S> {
    const result = await this.step(story, () => this.commands.execute(command));
    if (result.eventIds.length) story.cause = result.eventIds.at(-1)!;
    return result.state;
  }
}
