import { EntityManager } from 'typeorm';
import { EventFilter, RecordedEvent } from '../event-store/event-store.port';

export const PROJECTORS = Symbol('PROJECTORS');

/**
 * Builds one read model. `apply` runs inside the transaction that also moves
 * the checkpoint, so it must only write through the given manager.
 */
export interface Projector {
  readonly name: string;
  readonly filter: EventFilter;
  /** Tables emptied when the projection is rebuilt from zero. */
  readonly tables: string[];
  apply(event: RecordedEvent, manager: EntityManager): Promise<void>;
  /**
   * Optional: applies a batch in order with the same effect as `apply` on each event, in fewer
   * statements (multi-row writes). Catch-up and rebuild run a whole batch per transaction, so a
   * projector that writes a row per event spends its time on round trips without it.
   */
  applyBatch?(events: RecordedEvent[], manager: EntityManager): Promise<void>;
}
