import { setTimeout as sleep } from 'node:timers/promises';

/** How long a job's last report is tried for: a hub whose API is away longer is restarting, and recovers the job itself. */
export const LAST_REPORT_BUDGET_MS = 10 * 60_000;
const FIRST_RETRY_MS = 1_000;
const LONGEST_WAIT_MS = 30_000;

/**
 * Whether the hub may take the same report later: it never answered (the tunnel dropped, the call timed out), or
 * answered that it could not take it now (5xx, 408, 429). Any other answer is the hub's word on it, final.
 */
export function worthRetrying(error: unknown): boolean {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status !== 'number' || status >= 500 || status === 408 || status === 429;
}

/**
 * Sends a job's last report ("finished", "failed") until the hub takes it or refuses it. Only that report ends the
 * job on the hub: one lost to a hub busy for a moment left the job `transferring` until someone cancelled it, its
 * VM unable to take another backup. Retries wait 1, 2, 4 ... 30 s, for `budgetMs` in all, or until `signal` (the
 * agent stopping) ends them; the last error is thrown. A report the hub already took is taken again harmlessly:
 * the job's end is recorded once.
 */
export async function sendLastReport(send: () => Promise<void>, opts: { signal?: AbortSignal; budgetMs?: number; onRetry?: (error: unknown, waitMs: number) => void } = {}): Promise<void> {
  const deadline = Date.now() + (opts.budgetMs ?? LAST_REPORT_BUDGET_MS);
  for (let wait = FIRST_RETRY_MS; ; wait = Math.min(wait * 2, LONGEST_WAIT_MS)) {
    try {
      return await send();
    } catch (error) {
      const left = deadline - Date.now();
      if (!worthRetrying(error) || left <= 0 || opts.signal?.aborted) throw error;
      opts.onRetry?.(error, Math.min(wait, left));
      await sleep(Math.min(wait, left), undefined, { signal: opts.signal }).catch(() => undefined);
      if (opts.signal?.aborted) throw error;
    }
  }
}
