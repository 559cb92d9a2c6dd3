import { abortableSleep } from '../event-store/abortable-sleep';

/** A background loop for a workflow: `tick` every `ms` until stopped; a failed tick is reported and the next runs anyway. */
export class Ticker {
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(
    private readonly ms: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Aborted once `stop` was called: a long tick checks it between steps. */
  get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  start(tick: () => Promise<void>): void {
    this.loop = (async () => {
      while (!this.abort.signal.aborted) {
        await tick().catch(this.onError);
        await abortableSleep(this.ms, this.abort.signal);
      }
    })();
  }

  /** Resolves once the tick running now (if any) has ended. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }
}
