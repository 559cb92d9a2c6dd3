import { Ticker } from './ticker';

describe('Ticker', () => {
  it('ticks until stopped, goes on after a failed tick, and stop waits for the tick running', async () => {
    const errors: unknown[] = [];
    const ticker = new Ticker(5, (e) => errors.push(e));
    let ticks = 0;
    let finished = 0;
    ticker.start(async () => {
      ticks++;
      if (ticks === 2) throw new Error('boom');
      await new Promise((r) => setTimeout(r, 20));
      finished++;
    });
    while (ticks < 4) await new Promise((r) => setTimeout(r, 5));
    expect(ticker.stopping).toBe(false);
    await ticker.stop();
    expect(ticker.stopping).toBe(true);
    expect(finished).toBe(ticks - 1);
    expect(errors).toEqual([new Error('boom')]);
    const after = ticks;
    await new Promise((r) => setTimeout(r, 30));
    expect(ticks).toBe(after);
  });
});
