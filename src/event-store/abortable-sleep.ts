/** Sleeps up to ms; wakes early when the signal aborts or wake() is called. Never rejects. */
export function abortableSleep(ms: number, signal?: AbortSignal, register?: (wake: () => void) => () => void): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    let unregister: (() => void) | undefined;
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      unregister?.();
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    unregister = register?.(done);
  });
}
