import type { EmbeddedDatabase } from '../../src/database/embedded-postgres';

export default async function globalTeardown(): Promise<void> {
  const db = (globalThis as { __SENDENSE_TEST_DB__?: EmbeddedDatabase }).__SENDENSE_TEST_DB__;
  await db?.stop();
}
