import { blockStatus, errorChunk, noneChunk, offsetData, offsetHole, simpleReply } from '../../test/fixtures/nbd/wire';
import { NBD_CMD_BLOCK_STATUS, NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_WRITE_ZEROES } from './constants';
import { NbdProtocolError } from './errors';
import { ExpectedReply, NbdReplyParser, ReplySink } from './reply-parser';
import { prng } from '../../test/support/prng';

const SEED = Number(process.env.NBD_FUZZ_SEED ?? 0x5e0d5e);
const CASES = Number(process.env.NBD_FUZZ_CASES ?? 6000);

interface Scenario {
  structured: boolean;
  requests: [number, ExpectedReply][];
  bytes: Buffer;
}

/** A valid reply stream for a few random requests, chunks interleaved across cookies. */
function validScenario(rand: () => number): Scenario {
  const int = (n: number) => Math.floor(rand() * n);
  const structured = rand() < 0.85;
  const count = 1 + int(5);
  const requests: [number, ExpectedReply][] = [];
  const perCookie: Buffer[][] = [];
  for (let i = 0; i < count; i++) {
    const cookie = 1 + int(1000) * 8 + i;
    const kind = int(structured ? 5 : 4);
    const offset = int(64) * 512;
    const length = 1 + int(3000);
    const parts: Buffer[] = [];
    if (kind === 0) {
      requests.push([cookie, { type: NBD_CMD_READ, offset, length }]);
      if (!structured) parts.push(simpleReply(cookie, 0, Buffer.alloc(length, int(256))));
      else {
        // cut into data/hole pieces, shuffled, final NONE or DONE on the last
        const cuts: [number, number][] = [];
        for (let pos = 0; pos < length; ) {
          const n = Math.min(length - pos, 1 + int(1200));
          cuts.push([pos, n]);
          pos += n;
        }
        cuts.sort(() => rand() - 0.5);
        cuts.forEach(([pos, n], j) => {
          const last = j === cuts.length - 1 && rand() < 0.5;
          parts.push(rand() < 0.3 ? offsetHole(cookie, offset + pos, n, last) : offsetData(cookie, offset + pos, Buffer.alloc(n, j), last));
        });
        if (!(parts.length && parts[parts.length - 1].readUInt16BE(4) & 1)) parts.push(noneChunk(cookie));
      }
    } else if (kind === 1 || kind === 2) {
      requests.push([cookie, { type: kind === 1 ? NBD_CMD_WRITE : NBD_CMD_WRITE_ZEROES, offset, length }]);
      parts.push(rand() < 0.2 ? simpleReply(cookie, [1, 5, 22, 28][int(4)]) : structured && rand() < 0.3 ? errorChunk(cookie, 5, 'boom') : simpleReply(cookie));
    } else if (kind === 3) {
      requests.push([cookie, { type: NBD_CMD_FLUSH, offset: 0, length: 0 }]);
      parts.push(structured && rand() < 0.5 ? noneChunk(cookie) : simpleReply(cookie));
    } else {
      requests.push([cookie, { type: NBD_CMD_BLOCK_STATUS, offset, length }]);
      const extents: [number, number][] = Array.from({ length: 1 + int(6) }, () => [1 + int(70000), int(4)]);
      parts.push(blockStatus(cookie, 1, extents, false), blockStatus(cookie, 2, extents.slice(0, 1), true));
    }
    perCookie.push(parts);
  }
  // interleave chunks of different cookies, keeping each cookie's order
  const out: Buffer[] = [];
  const queues = perCookie.map((p) => [...p]);
  while (queues.some((q) => q.length)) {
    const live = queues.filter((q) => q.length);
    out.push(live[int(live.length)].shift()!);
  }
  return { structured, requests, bytes: Buffer.concat(out) };
}

function mutate(bytes: Buffer, rand: () => number): Buffer {
  const int = (n: number) => Math.floor(rand() * n);
  let b = Buffer.from(bytes);
  const rounds = 1 + int(4);
  for (let r = 0; r < rounds; r++) {
    const at = int(Math.max(1, b.length));
    switch (int(7)) {
      case 0: // flip bits
        if (b.length) b[at] ^= 1 << int(8);
        break;
      case 1: // random byte
        if (b.length) b[at] = int(256);
        break;
      case 2: // truncate
        b = b.subarray(0, at);
        break;
      case 3: // insert garbage
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + int(32) }, () => int(256))), b.subarray(at)]);
        break;
      case 4: // delete a run
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(40))]);
        break;
      case 5: // duplicate a run (repeated chunks, replays)
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + int(60)), b.subarray(at)]);
        break;
      default: // overwrite a 32-bit field with an interesting value
        if (b.length >= at + 4) b.writeUInt32BE([0, 1, 0xffffffff, 0x7fffffff, 0x668e33ef, 0x67446698, 8, 12, 20][int(9)], at);
    }
  }
  return b;
}

function randomBytes(rand: () => number): Buffer {
  const n = Math.floor(rand() * 200);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  // often start with a real magic so the parser gets past the first check
  if (n >= 4 && rand() < 0.6) b.writeUInt32BE(rand() < 0.5 ? 0x668e33ef : 0x67446698, 0);
  return b;
}

/**
 * Feeds a scenario in random pieces and checks the parser's contract: it
 * either accepts everything or throws NbdProtocolError (never another error
 * type), emits nothing after failing, never reports data outside a request,
 * and completes each cookie at most once.
 */
function run(s: Scenario, rand: () => number): { ok: boolean; done: number } {
  const parser = new NbdReplyParser({ structuredReplies: s.structured, contextIds: [1, 2] });
  const requests = new Map(s.requests);
  for (const [cookie, req] of s.requests) parser.expect(cookie, req);
  const finished = new Set<number>();
  let failed = false;
  const check = (cookie: number) => {
    if (failed) throw new Error('event after failure');
    if (!requests.has(cookie)) throw new Error(`event for unregistered cookie ${cookie}`);
    if (finished.has(cookie)) throw new Error(`event after done for ${cookie}`);
  };
  const inRange = (cookie: number, offset: number, length: number) => {
    const r = requests.get(cookie)!;
    if (offset < r.offset || offset + length > r.offset + r.length || length <= 0) throw new Error(`data ${offset}+${length} outside request ${r.offset}+${r.length}`);
  };
  const sink: ReplySink = {
    data: (cookie, offset, data) => {
      check(cookie);
      inRange(cookie, offset, data.length);
    },
    hole: (cookie, offset, length) => {
      check(cookie);
      inRange(cookie, offset, length);
    },
    blockStatus: (cookie, _ctx, descriptors) => {
      check(cookie);
      if (!descriptors.length || descriptors.some((d) => d.length === 0)) throw new Error('bad descriptors delivered');
    },
    error: (cookie, errno) => {
      check(cookie);
      if (errno === 0) throw new Error('error 0 delivered');
    },
    done: (cookie) => {
      check(cookie);
      finished.add(cookie);
    },
  };
  let pos = 0;
  try {
    while (pos < s.bytes.length) {
      const n = 1 + Math.floor(rand() * (rand() < 0.3 ? 8 : 400));
      parser.push(s.bytes.subarray(pos, pos + n), sink);
      pos += n;
    }
    return { ok: true, done: finished.size };
  } catch (error) {
    failed = true;
    if (!(error instanceof NbdProtocolError)) throw new Error(`non-protocol error escaped the parser: ${(error as Error).stack}`);
    expect(() => parser.push(Buffer.alloc(1), sink)).toThrow(NbdProtocolError);
    return { ok: false, done: finished.size };
  }
}

describe('NbdReplyParser fuzzing', () => {
  it('accepts every unmutated valid stream, in any split', () => {
    const rand = prng(SEED);
    for (let i = 0; i < 500; i++) {
      const s = validScenario(rand);
      const result = run(s, rand);
      expect(result).toEqual({ ok: true, done: s.requests.length });
    }
  });

  it(`either parses or raises NbdProtocolError for ${CASES} mutated and random inputs, in bounded time`, () => {
    const rand = prng(SEED ^ 0xfeed);
    let rejected = 0;
    let slowest = 0;
    const began = Date.now();
    for (let i = 0; i < CASES; i++) {
      const s = validScenario(rand);
      const input = i % 4 === 3 ? { ...s, bytes: randomBytes(rand) } : { ...s, bytes: mutate(s.bytes, rand) };
      const t = process.hrtime.bigint();
      try {
        if (!run(input, rand).ok) rejected++;
      } catch (error) {
        throw new Error(`case ${i} (seed ${SEED}): ${(error as Error).message}\ninput ${input.bytes.toString('hex').slice(0, 400)}`);
      }
      slowest = Math.max(slowest, Number(process.hrtime.bigint() - t) / 1e6);
    }
    // most mutations must be caught, and no single input may take long
    expect(rejected).toBeGreaterThan(CASES / 2);
    expect(slowest).toBeLessThan(250);
    expect(Date.now() - began).toBeLessThan(30_000);
  });
});
