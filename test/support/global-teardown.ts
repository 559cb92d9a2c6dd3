import { rmSync } from 'node:fs';
import type { GlobalConfig } from 'jest';
import type { EmbeddedDatabase } from '../../src/database/embedded-postgres';

/**
 * Stops the run's database and removes its data dir: a run leaves nothing in the temp dir. A jest that is done but
 * does not exit (a timer, socket or child process a test left running) would wait for CI's own limit, which then
 * kills the whole run with no name for the cause: once its grace has passed it fails instead, saying why.
 */
export default async function globalTeardown(globalConfig: GlobalConfig): Promise<void> {
  const { __SENDENSE_TEST_DB__: db, __SENDENSE_TEST_DB_DIR__: dir } = globalThis as { __SENDENSE_TEST_DB__?: EmbeddedDatabase; __SENDENSE_TEST_DB_DIR__?: string };
  await db?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  const grace = Number(process.env.SENDENSE_TEST_EXIT_GRACE_S);
  if (!globalConfig.watch && !globalConfig.watchAll) failUnlessExited(Number.isFinite(grace) && grace > 0 ? grace : 60);
}

function failUnlessExited(seconds: number): void {
  setTimeout(() => {
    process.stderr.write(`jest had not exited ${seconds} s after its tests ended: a test left a timer, socket or process running (npx jest --detectOpenHandles FILE names it)\n`);
    process.exit(1);
  }, seconds * 1000).unref();
}
