import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { EVENT_STORE, EventStore, WrongExpectedRevisionError } from '../event-store/event-store.port';
import { Aggregate, DomainEvent } from './aggregate';
import { metadataFor } from './event-metadata';
import { KeyedMutex } from '../process/keyed-mutex';

export interface ExecuteResult<S, E> {
  state: S;
  events: E[];
  /** Ids of the appended events, in order: what a workflow names as the cause of its next command. */
  eventIds: string[];
  position: string | null;
}

interface Cached {
  aggregate: object;
  state: unknown;
  revision: bigint | null;
}

const MAX_ATTEMPTS = 50;
const CACHE_LIMIT = 1000;

/**
 * Load → decide → append with the expected revision. Commands on one stream
 * are serialised within this process; a writer in another process makes us
 * catch up and decide again. States are cached per stream and brought up to
 * date by reading only the newer events, so long-lived streams stay cheap.
 * `evolve` must therefore never mutate the state it is given.
 */
@Injectable()
export class AggregateRepository {
  private readonly mutex = new KeyedMutex();
  private readonly cache = new Map<string, Cached>();
  /** Events never change: a type once found is kept, so a job's hundreds of reports do not each read its stream. */
  private readonly eventTypes = new Map<string, string>();

  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  async load<S, E extends DomainEvent>(streamId: string, aggregate: Pick<Aggregate<S, never, E>, 'initialState' | 'evolve'>) {
    const cached = this.cache.get(streamId);
    let state: S = cached?.aggregate === aggregate ? (cached.state as S) : aggregate.initialState();
    let revision = cached?.aggregate === aggregate ? cached.revision : null;
    const events = await this.store.readStream(streamId, { fromRevision: revision === null ? 0n : revision + 1n });
    for (const e of events) state = aggregate.evolve(state, { type: e.type, data: e.data } as E);
    if (events.length) revision = events[events.length - 1].revision;
    this.remember(streamId, { aggregate, state, revision });
    return { state, revision };
  }

  /**
   * The type of the event `eventId` of the stream; null when the stream holds no such event. An agent's report
   * names the hub event that asked for the work as its cause: what it names is checked with this.
   */
  async typeOf(streamId: string, eventId: string): Promise<string | null> {
    const key = `${streamId}\n${eventId}`;
    const known = this.eventTypes.get(key);
    if (known !== undefined) return known;
    const type = (await this.store.readStream(streamId)).find((e) => e.id === eventId)?.type ?? null;
    // an unknown id is not kept: the event may be appended by another hub a moment later
    if (type !== null) {
      this.eventTypes.set(key, type);
      if (this.eventTypes.size > CACHE_LIMIT) this.eventTypes.delete(this.eventTypes.keys().next().value as string);
    }
    return type;
  }

  execute<S, C, E extends DomainEvent>(
    streamId: string,
    aggregate: Aggregate<S, C, E>,
    decision: C,
    /** `causationId`: what the command names as its cause (an agent's report names the hub event that asked for it). */
    cause: { commandId: string; causationId?: string } = { commandId: randomUUID() },
  ): Promise<ExecuteResult<S, E>> {
    return this.mutex.run(streamId, async () => {
      for (let attempt = 1; ; attempt++) {
        const { state, revision, events } = await this.decideOn(streamId, aggregate, decision, attempt === 1);
        if (events.length === 0) return { state, events, eventIds: [], position: null };
        const eventIds = events.map(() => randomUUID());
        try {
          const result = await this.store.append(
            streamId,
            events.map((e, i) => ({ id: eventIds[i], type: e.type, data: e.data, metadata: metadataFor(cause.commandId, cause.causationId ? { causationId: cause.causationId } : {}) })),
            revision === null ? 'no_stream' : revision,
          );
          const next = events.reduce((s, e) => aggregate.evolve(s, e), state);
          this.remember(streamId, { aggregate, state: next, revision: result.nextRevision });
          return { state: next, events, eventIds, position: result.position };
        } catch (error) {
          if (!(error instanceof WrongExpectedRevisionError) || attempt >= MAX_ATTEMPTS) throw error;
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 * attempt)));
        }
      }
    });
  }

  /**
   * The decision on the stream's state. The first attempt decides on the cached state without reading: when that
   * yields events, the append's expected revision refuses them if another process wrote meanwhile, and the next
   * attempt reads what it missed. A refusal or "nothing to do" on the cached state may be stale, so those are
   * decided again on what the store holds. A backup's some 30 commands each save a query (docs/benchmarks.md, peer).
   */
  private async decideOn<S, C, E extends DomainEvent>(streamId: string, aggregate: Aggregate<S, C, E>, decision: C, mayUseCache: boolean): Promise<{ state: S; revision: bigint | null; events: E[] }> {
    const cached = mayUseCache ? this.cache.get(streamId) : undefined;
    if (cached?.aggregate === aggregate) {
      try {
        const events = aggregate.decide(decision, cached.state as S);
        if (events.length) return { state: cached.state as S, revision: cached.revision, events };
      } catch {
        // decided again below, on what the store holds
      }
    }
    const { state, revision } = await this.load(streamId, aggregate);
    return { state, revision, events: aggregate.decide(decision, state) };
  }

  private remember(streamId: string, entry: Cached): void {
    this.cache.delete(streamId);
    this.cache.set(streamId, entry);
    if (this.cache.size > CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as string);
  }
}
