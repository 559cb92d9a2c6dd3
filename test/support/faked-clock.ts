import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

/**
 * A hub's wall clock moved by libfaketime, steered through a timestamp file the library reads at every call;
 * timers stay on the real monotonic clock.
 */
export class FakedClock {
  readonly file: string;

  constructor(name: string) {
    this.file = join(tmpdir(), `sendense-${name}-clock-${process.pid}`);
  }

  /** For the hub's process: the library preloaded, reading the file at every call, in UTC. */
  get env(): NodeJS.ProcessEnv {
    return { LD_PRELOAD: FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE: this.file, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1', TZ: 'UTC' };
  }

  /** Where deployment/install-deps.sh ran the library is there: its absence fails the test instead of skipping it. */
  requireLibrary(): void {
    if (!existsSync(FAKETIME_LIB)) throw new Error(`${FAKETIME_LIB} is missing: deployment/install-deps.sh installs libfaketime`);
  }

  /** The clock reads `ms` now, and runs on from there. */
  at(ms: number): void {
    writeFileSync(this.file, `@${new Date(ms).toISOString().replace('T', ' ').slice(0, 19)}\n`);
  }

  /** The clock runs `ms` ahead of the real one. */
  ahead(ms: number): void {
    writeFileSync(this.file, `+${Math.ceil(ms / 1000)}\n`);
  }

  remove(): void {
    rmSync(this.file, { force: true });
  }
}
