import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres } from '../../src/database/embedded-postgres';

/** One real embedded PostgreSQL for the whole run; each test file creates its own database in it. */
export default async function globalSetup(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sendense-test-pg-'));
  const db = await startEmbeddedPostgres(dir, (level, message) => {
    if (level === 'warn') console.warn(`[embedded-postgres] ${message}`);
  });
  Object.assign(globalThis, { __SENDENSE_TEST_DB__: db, __SENDENSE_TEST_DB_DIR__: dir });
  process.env.SENDENSE_TEST_EMBEDDED_DB = JSON.stringify(db.connection);
}
