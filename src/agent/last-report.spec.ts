import { HubAnswerError } from './hub-client';
import { sendLastReport, worthRetrying } from './last-report';

const answered = (status: number) => new HubAnswerError(status, `hub answered ${status}`);

describe("a job's last report", () => {
  it('is tried again when the hub did not answer or could not take it now, and not when it refused it', () => {
    expect([new Error('fetch failed'), new DOMException('timed out', 'TimeoutError'), answered(500), answered(503), answered(408), answered(429)].map(worthRetrying)).toEqual([true, true, true, true, true, true]);
    expect([answered(400), answered(403), answered(404), answered(409)].map(worthRetrying)).toEqual([false, false, false, false]);
  });

  it('reaches a hub that failed it twice, after waits of 1 and 2 seconds', async () => {
    const waits: number[] = [];
    let calls = 0;
    await sendLastReport(
      async () => {
        if (++calls < 3) throw answered(503);
      },
      { onRetry: (_e, ms) => waits.push(ms) },
    );
    expect({ calls, waits }).toEqual({ calls: 3, waits: [1000, 2000] });
  });

  it("throws the hub's refusal at once", async () => {
    let calls = 0;
    await expect(sendLastReport(async () => void (calls++, (() => { throw answered(409); })()))).rejects.toThrow('hub answered 409');
    expect(calls).toBe(1);
  });

  it('gives up with the last error once its budget is spent, and at once when the agent stops', async () => {
    let calls = 0;
    const started = Date.now();
    await expect(sendLastReport(async () => void (calls++, (() => { throw new Error(`lost ${calls}`); })()), { budgetMs: 150 })).rejects.toThrow(/^lost [2-9]$/);
    expect(Date.now() - started).toBeLessThan(1000);
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 50);
    const stopped = Date.now();
    await expect(sendLastReport(async () => Promise.reject(answered(502)), { signal: stop.signal })).rejects.toThrow('hub answered 502');
    expect(Date.now() - stopped).toBeLessThan(900);
  });
});
