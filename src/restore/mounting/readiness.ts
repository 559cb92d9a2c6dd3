import { describeExit, ExitStatus, HelperChild } from './helper-processes';

export class HelperStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HelperStartError';
  }
}

/** Why a helper did not come up, with the tail of its log (its own explanation). */
export function startFailureMessage(what: string, outcome: ExitStatus | 'timeout', tail: string, timeoutMs: number): HelperStartError {
  if (outcome === 'timeout') return new HelperStartError(`${what} was not ready within ${timeoutMs} ms${tail ? `: ${tail}` : ''}`);
  const when = outcome.spawnError ? '' : ' before it was ready';
  return new HelperStartError(`${what} ${describeExit(outcome)}${when}${tail ? `: ${tail}` : ''}`);
}

/**
 * Polls `ready` until it holds, the helper exits (its log tail then explains
 * why), or timeoutMs passes. Polling is cheap here: nbdfuse becomes ready
 * within tens of milliseconds.
 */
export async function waitForHelperReady(helper: HelperChild, what: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exit: ExitStatus | undefined;
  void helper.exited.then((status) => (exit = status));
  for (;;) {
    if (exit !== undefined || helper.hasExited()) {
      throw startFailureMessage(what, exit ?? (await helper.exited), await helper.logTail(), timeoutMs);
    }
    if (await ready()) return;
    if (Date.now() >= deadline) throw startFailureMessage(what, 'timeout', await helper.logTail(), timeoutMs);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
