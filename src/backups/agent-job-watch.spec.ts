import { watchAgentJob } from './agent-job-watch';

/** The agent's answers in turn (true: it runs the job; false: it does not; an Error: it did not answer), then `after` for ever. */
function agent(answers: Array<boolean | Error>, after: boolean | Error = true) {
  let asked = 0;
  return {
    running: async () => {
      const a = asked < answers.length ? answers[asked] : after;
      asked++;
      if (a instanceof Error) throw a;
      return a;
    },
    asked: () => asked,
  };
}

describe("the hub's watch over a job whose last report it waits for", () => {
  it('calls the job lost once the agent said twice in a row that it no longer runs it', async () => {
    const a = agent([true, false, true, false, new Error('no answer'), false, false]);
    let lost = 0;
    await watchAgentJob({ running: a.running, lost: () => lost++, signal: new AbortController().signal, intervalMs: 1 });
    // a "no" after a "yes" or after no answer starts the count again: only the last two answers in a row count
    expect({ lost, asked: a.asked() }).toEqual({ lost: 1, asked: 7 });
  });

  it('never calls it lost while the agent runs it or does not answer, and stops asking when the wait ends', async () => {
    const a = agent([true, new Error('tunnel busy'), false, new Error('tunnel busy'), false], true);
    const stop = new AbortController();
    let lost = 0;
    const watching = watchAgentJob({ running: a.running, lost: () => lost++, signal: stop.signal, intervalMs: 1 });
    while (a.asked() < 20) await new Promise((r) => setTimeout(r, 1));
    stop.abort();
    await watching;
    const asked = a.asked();
    await new Promise((r) => setTimeout(r, 20));
    expect({ lost, askedAfterStop: a.asked() - asked }).toEqual({ lost: 0, askedAfterStop: 0 });
  });
});
