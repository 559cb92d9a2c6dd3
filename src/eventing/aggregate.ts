import { JsonObject } from '../event-store/event-store.port';

export interface DomainEvent<T extends string = string, D extends JsonObject = JsonObject> {
  type: T;
  data: D;
}

/** Pure domain rules: `decide` says what happens, `evolve` folds what happened into state. */
export interface Aggregate<S, C, E extends DomainEvent> {
  initialState(): S;
  evolve(state: S, event: E): S;
  decide(command: C, state: S): E[];
}

export function fold<S, E extends DomainEvent>(aggregate: Pick<Aggregate<S, never, E>, 'initialState' | 'evolve'>, events: E[]): S {
  return events.reduce((s, e) => aggregate.evolve(s, e), aggregate.initialState());
}
