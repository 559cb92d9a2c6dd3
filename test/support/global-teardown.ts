import { rmSync } from 'node:fs';
import type { EmbeddedDatabase } from '../../src/database/embedded-postgres';

/** Stops the run's database and removes its data dir: a run leaves nothing in the temp dir. */
export default async function globalTeardown(): Promise<void> {
  const { __SENDENSE_TEST_DB__: db, __SENDENSE_TEST_DB_DIR__: dir } = globalThis as { __SENDENSE_TEST_DB__?: EmbeddedDatabase; __SENDENSE_TEST_DB_DIR__?: string };
  await db?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
