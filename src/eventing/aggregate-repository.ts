import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { EVENT_STORE, EventStore, WrongExpectedRevisionError } from '../event-store/event-store.port';
import { Aggregate, DomainEvent } from './aggregate';
import { metadataFor } from './event-metadata';
import { currentContext } from './request-context';

export interface ExecuteResult<S, E> {
  state: S;
  events: E[];
  position: string | null;
}

const MAX_ATTEMPTS = 8;

/** Load → decide → append with the expected revision; a concurrent writer makes us reload and decide again. */
@Injectable()
export class AggregateRepository {
  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async load<S, E extends DomainEvent>(streamId: string, aggregate: Pick<Aggregate<S, never, E>, 'initialState' | 'evolve'>) {
    const events = await this.store.readStream(streamId);
    const state = events.reduce((s, e) => aggregate.evolve(s, { type: e.type, data: e.data } as E), aggregate.initialState());
    const revision = events.length ? events[events.length - 1].revision : null;
    return { state, revision };
  }

  async execute<S, C, E extends DomainEvent>(
    streamId: string,
    aggregate: Aggregate<S, C, E>,
    command: C,
    causationId: string = currentContext().causationId ?? randomUUID(),
  ): Promise<ExecuteResult<S, E>> {
    for (let attempt = 1; ; attempt++) {
      const { state, revision } = await this.load(streamId, aggregate);
      const events = aggregate.decide(command, state);
      if (events.length === 0) return { state, events, position: null };
      try {
        const result = await this.store.append(
          streamId,
          events.map((e) => ({ type: e.type, data: e.data, metadata: metadataFor(causationId) })),
          revision === null ? 'no_stream' : revision,
        );
        const next = events.reduce((s, e) => aggregate.evolve(s, e), state);
        return { state: next, events, position: result.position };
      } catch (error) {
        if (!(error instanceof WrongExpectedRevisionError) || attempt >= MAX_ATTEMPTS) throw error;
        await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
      }
    }
  }
}
