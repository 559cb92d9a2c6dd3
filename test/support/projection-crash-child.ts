import { Pool } from 'pg';
import { createDataSource } from '../../src/database/data-source';
import { DbConnection, pgClientConfig, pgPoolConfig } from '../../src/database/db-connection';
import { PostgresEventStore } from '../../src/event-store/postgres/postgres-event-store';
import { ProjectionRunner } from '../../src/projection-runner/projection-runner';
import { BatchCounterProjector, CounterProjector } from './counter-projector';
import { READ_MODEL_ENTITIES } from '../../projections/read-model-entities';

/**
 * Runs the counter projection and SIGKILLs itself right after the read-model
 * write for event n = CRASH_AT_N, before the batch's checkpoint can commit.
 */
async function main(): Promise<void> {
  const connection = JSON.parse(process.env.CRASH_DB!) as DbConnection;
  const crashAt = Number(process.env.CRASH_AT_N);
  const dataSource = createDataSource(connection, READ_MODEL_ENTITIES);
  await dataSource.initialize();
  const store = new PostgresEventStore(new Pool(pgPoolConfig(connection)), pgClientConfig(connection));
  const crash = (event: { data: { n?: unknown } }) => {
    if (event.data.n === crashAt) process.kill(process.pid, 'SIGKILL');
  };
  // CRASH_APPLY=batch: the whole batch is written by one statement before the kill (applyBatch).
  const projector = process.env.CRASH_APPLY === 'batch' ? new BatchCounterProjector(crash) : new CounterProjector(crash);
  new ProjectionRunner(projector, store, dataSource, pgClientConfig(connection), { batchSize: Number(process.env.CRASH_BATCH ?? 10) }).start();
}

void main();
