/**
 * Runs `tick` again `intervalMs` after each run ended, until `stop`, which waits for a run in progress. A run slower
 * than the interval (a libvirt host with hundreds of domains, a libvirtd that answers slowly) never overlaps the
 * next, where setInterval would start one every interval and pile them up. `tick` handles its own failures: one that
 * rejects is not retried sooner, and the next runs as usual.
 */
export function repeatAfter(intervalMs: number, tick: () => Promise<void>): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const schedule = () => {
    if (!stopped) timer = setTimeout(run, intervalMs);
  };
  const run = () => {
    let ended!: () => void;
    // set before the tick starts: a stop it calls itself waits for it too
    running = new Promise<void>((resolve) => (ended = resolve));
    void tick()
      .catch(() => undefined)
      .finally(() => {
        running = undefined;
        ended();
        schedule();
      });
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
