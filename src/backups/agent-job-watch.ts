import { abortableSleep } from '../event-store/abortable-sleep';

/** How often a hub waiting for an agent's last report asks the agent whether it still runs the job. */
export const AGENT_JOB_CHECK_MS = 30_000;

/**
 * Asks every `intervalMs` whether the agent still runs the job, and calls `lost` once it said no twice in a row:
 * the agent then holds no last report for it (it keeps the job until that report is delivered or given up), and
 * only that report would end the job here. Twice, so that a report the hub is taking as it asks is not taken
 * for lost. An agent that does not answer is not counted: its session ending fails the job on its own.
 */
export async function watchAgentJob(opts: { running: () => Promise<boolean>; lost: () => void; signal: AbortSignal; intervalMs?: number }): Promise<void> {
  let saidNo = 0;
  while (!opts.signal.aborted) {
    await abortableSleep(opts.intervalMs ?? AGENT_JOB_CHECK_MS, opts.signal);
    if (opts.signal.aborted) return;
    const running = await opts.running().catch(() => null);
    if (opts.signal.aborted) return;
    saidNo = running === false ? saidNo + 1 : 0;
    if (saidNo === 2) return opts.lost();
  }
}
