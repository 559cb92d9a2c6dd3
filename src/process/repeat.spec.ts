import { repeatAfter } from './repeat';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('repeatAfter', () => {
  it('never runs a tick slower than the interval alongside the next, and stops after the one in progress', async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    let stopped: Promise<void> | undefined;
    let stoppedWhileRunning = false;
    const repeat = repeatAfter(5, async () => {
      most = Math.max(most, ++running);
      runs++;
      // the fourth run asks to stop as it starts: stop waits for it
      if (runs === 4) stopped = repeat.stop().then(() => void (stoppedWhileRunning = running > 0));
      await sleep(30);
      running--;
    });
    while (!stopped) await sleep(10);
    await stopped;
    await sleep(60);
    expect(most).toBe(1);
    expect(runs).toBe(4);
    expect(stoppedWhileRunning).toBe(false);
  });

  it('runs on after a tick that failed', async () => {
    let runs = 0;
    const repeat = repeatAfter(5, async () => {
      runs++;
      throw new Error('libvirtd away');
    });
    // a count of runs, not a time: a loaded machine (CI's two lanes) gave only 2 runs in 100 ms
    const deadline = Date.now() + 10_000;
    while (runs < 3 && Date.now() < deadline) await sleep(10);
    await repeat.stop();
    expect(runs).toBeGreaterThanOrEqual(3);
  });
});
