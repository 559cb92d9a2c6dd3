import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ByteCounter, contentDisposition, parseRange } from './http-download';

describe('Range header', () => {
  it.each<[string | undefined, number, ReturnType<typeof parseRange>]>([
    [undefined, 100, { kind: 'full' }],
    ['bytes=0-9', 100, { kind: 'partial', start: 0, end: 9 }],
    ['bytes=90-', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=-10', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=-1000', 100, { kind: 'partial', start: 0, end: 99 }],
    ['bytes=50-5000', 100, { kind: 'partial', start: 50, end: 99 }],
    ['bytes=99-99', 100, { kind: 'partial', start: 99, end: 99 }],
    ['Bytes = 1-2', 100, { kind: 'partial', start: 1, end: 2 }],
    ['bytes=0-1,5-6', 100, { kind: 'full' }],
    ['items=0-1', 100, { kind: 'full' }],
  ])('%j of %i bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it.each<[string, number, RegExp]>([
    ['bytes=100-', 100, /beyond the last byte/],
    ['bytes=100-200', 100, /beyond the last byte/],
    ['bytes=5-2', 100, /ends \(2\) before it starts \(5\)/],
    ['bytes=-0', 100, /0 bytes/],
    ['bytes=abc', 100, /malformed/],
    ['bytes=-', 100, /malformed/],
    ['bytes=1.5-2', 100, /malformed/],
    ['bytes=0-0', 0, /empty/],
    ['bytes=99999999999999999999-', 100, /beyond the last byte/],
  ])('%j of %i bytes is unsatisfiable', (header, size, reason) => {
    const answer = parseRange(header, size);
    expect(answer.kind).toBe('unsatisfiable');
    expect(answer.kind === 'unsatisfiable' && answer.reason).toMatch(reason);
  });
});

describe('Content-Disposition', () => {
  it('gives plain names as they are', () => {
    expect(contentDisposition('ReadMe.txt')).toBe(`attachment; filename="ReadMe.txt"; filename*=UTF-8''ReadMe.txt`);
  });

  it('gives UTF-8 names exactly (RFC 8187) with an ASCII fallback', () => {
    expect(contentDisposition('Grüße aus Köln.txt')).toBe(`attachment; filename="Gr__e aus K_ln.txt"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20aus%20K%C3%B6ln.txt`);
  });

  it('cannot be broken out of by quotes, backslashes, separators or newlines', () => {
    const header = contentDisposition('a"; filename=evil.exe\\\r\n.txt');
    expect(header).toBe(`attachment; filename="a_; filename=evil.exe___.txt"; filename*=UTF-8''a%22%3B%20filename%3Devil.exe%5C%0D%0A.txt`);
    expect(header).not.toMatch(/[\r\n]/);
  });

  it("percent-encodes the characters RFC 8187 does not allow bare: ' ( ) *", () => {
    expect(contentDisposition("it's (1)*.txt")).toContain(`filename*=UTF-8''it%27s%20%281%29%2A.txt`);
  });
});

describe('ByteCounter', () => {
  it('counts what passes through', async () => {
    const counter = new ByteCounter();
    const chunks: Buffer[] = [];
    await pipeline(Readable.from([Buffer.alloc(10), Buffer.alloc(5)]), counter, async function* (source) {
      for await (const chunk of source) chunks.push(chunk as Buffer);
    });
    expect(counter.bytes).toBe(15);
    expect(Buffer.concat(chunks)).toHaveLength(15);
  });
});
