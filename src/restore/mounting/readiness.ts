import { describeExit, ExitStatus, HelperChild } from './helper-processes';

export class HelperStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HelperStartError';
  }
}

/**
 * Polls `ready` until it holds, the helper exits (its log tail then explains
 * why), or timeoutMs passes. Polling is cheap here: both helpers become
 * ready within tens of milliseconds.
 */
export async function waitForHelperReady(helper: HelperChild, what: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exit: ExitStatus | undefined;
  void helper.exited.then((status) => (exit = status));
  for (;;) {
    if (exit !== undefined || helper.hasExited()) {
      const status = exit ?? (await helper.exited);
      const tail = await helper.logTail();
      const when = status.spawnError ? '' : ' before it was ready';
      throw new HelperStartError(`${what} ${describeExit(status)}${when}${tail ? `: ${tail}` : ''}`);
    }
    if (await ready()) return;
    if (Date.now() >= deadline) {
      const tail = await helper.logTail();
      throw new HelperStartError(`${what} was not ready within ${timeoutMs} ms${tail ? `: ${tail}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
