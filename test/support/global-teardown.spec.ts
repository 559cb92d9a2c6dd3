import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A CI run once sat 53 minutes after its last test until its limit killed it: a failed test had left a retry loop
 * running. The suite's own teardown now ends such a jest with a failure that says why; here a real jest runs a
 * file that passes but leaves a timer running.
 */
describe('the test run teardown', () => {
  const ROOT = join(__dirname, '..', '..');
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sendense-teardown-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('fails a jest whose tests passed but that does not exit, naming the cause', () => {
    writeFileSync(join(dir, 'leak.spec.js'), "it('passes and leaves a timer running', () => { setInterval(() => {}, 1000); expect(1).toBe(1); });\n");
    const config = {
      rootDir: dir,
      testMatch: ['<rootDir>/leak.spec.js'],
      globalTeardown: join(ROOT, 'test/support/global-teardown.ts'),
      transform: { '^.+\\.ts$': [require.resolve('ts-jest'), { tsconfig: join(ROOT, 'tsconfig.json') }] },
    };
    const started = Date.now();
    const run = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--config', JSON.stringify(config)], {
      cwd: ROOT,
      env: { ...process.env, SENDENSE_TEST_EXIT_GRACE_S: '2', FORCE_COLOR: '0' },
      encoding: 'utf8',
      timeout: 50_000,
    });
    expect(run.signal).toBeNull();
    expect(run.stderr).toMatch(/Tests:\s+1 passed, 1 total/);
    expect(run.stderr).toMatch(/jest had not exited 2 s after its tests ended: a test left a timer, socket or process running/);
    expect(run.status).toBe(1);
    expect(Date.now() - started).toBeGreaterThan(2000);
  });
});
