import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';

export const COUNTER_TABLE_SQL = `CREATE TABLE IF NOT EXISTS test_counter (event_id uuid PRIMARY KEY, n int NOT NULL, applied int NOT NULL)`;

/** Counts how often each event was applied: any value above 1 is a double application. */
export class CounterProjector implements Projector {
  readonly name = 'test-counter';
  readonly filter = { streamPrefixes: ['counter-'] };
  readonly tables = ['test_counter'];

  constructor(private readonly afterWrite: (event: RecordedEvent) => void = () => undefined) {}

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    await manager.query(
      `INSERT INTO test_counter (event_id, n, applied) VALUES ($1, $2, 1)
       ON CONFLICT (event_id) DO UPDATE SET applied = test_counter.applied + 1`,
      [event.id, event.data.n],
    );
    this.afterWrite(event);
  }
}

/** The same counts written one statement per batch, through the runner's applyBatch path. */
export class BatchCounterProjector extends CounterProjector {
  constructor(private readonly afterBatchWrite: (event: RecordedEvent) => void = () => undefined) {
    super();
  }

  async applyBatch(events: RecordedEvent[], manager: EntityManager): Promise<void> {
    await manager.query(
      `INSERT INTO test_counter (event_id, n, applied) SELECT id, n, 1 FROM unnest($1::uuid[], $2::int[]) AS e(id, n)
       ON CONFLICT (event_id) DO UPDATE SET applied = test_counter.applied + 1`,
      [events.map((e) => e.id), events.map((e) => e.data.n)],
    );
    for (const event of events) this.afterBatchWrite(event);
  }
}
