/**
 * `work` on every item, at most `limit` at a time, results in the items' order. Once one fails no more start,
 * and it rejects with the first failure after every started one has settled: work still running when its caller
 * moves on would race the caller's cleanup (a disk copy still writing when its backup is reported failed, a read
 * on an export being closed).
 */
export async function mapAtOnce<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let firstError: { error: unknown } | null = null;
  const worker = async () => {
    while (next < items.length && !firstError) {
      const index = next++;
      try {
        results[index] = await work(items[index]);
      } catch (error) {
        firstError ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (firstError) throw (firstError as { error: unknown }).error;
  return results;
}
