import { KeyedMutex } from './keyed-mutex';

describe('KeyedMutex', () => {
  it('serialises tasks of one key and keeps going after a failure', async () => {
    const mutex = new KeyedMutex();
    const order: string[] = [];
    const task = (name: string, ms: number, fail = false) => () =>
      new Promise<string>((resolve, reject) => {
        order.push(`start ${name}`);
        setTimeout(() => {
          order.push(`end ${name}`);
          fail ? reject(new Error(name)) : resolve(name);
        }, ms);
      });
    const results = await Promise.allSettled([mutex.run('k', task('a', 20, true)), mutex.run('k', task('b', 1)), mutex.run('other', task('c', 1))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(order.indexOf('end a')).toBeLessThan(order.indexOf('start b'));
    expect(order.indexOf('start c')).toBeLessThan(order.indexOf('end a'));
  });
});
