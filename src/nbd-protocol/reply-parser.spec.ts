import { blockStatus, chunk, CHUNK, DONE, errorChunk, noneChunk, offsetData, offsetHole, simpleReply } from '../../test/fixtures/nbd/wire';
import { NBD_CMD_BLOCK_STATUS, NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_WRITE } from './constants';
import { NbdProtocolError } from './errors';
import { BlockStatusDescriptor, ExpectedReply, NbdReplyParser, ReplySink } from './reply-parser';

type Event =
  | { e: 'data'; cookie: number; offset: number; data: string }
  | { e: 'hole'; cookie: number; offset: number; length: number }
  | { e: 'bs'; cookie: number; contextId: number; descriptors: BlockStatusDescriptor[] }
  | { e: 'error'; cookie: number; errno: number; message: string; errorOffset?: number }
  | { e: 'done'; cookie: number };

function collector(): { sink: ReplySink; events: Event[] } {
  const events: Event[] = [];
  return {
    events,
    sink: {
      data: (cookie, offset, data) => events.push({ e: 'data', cookie, offset, data: data.toString('hex') }),
      hole: (cookie, offset, length) => events.push({ e: 'hole', cookie, offset, length }),
      blockStatus: (cookie, contextId, descriptors) => events.push({ e: 'bs', cookie, contextId, descriptors }),
      error: (cookie, errno, message, errorOffset) => events.push({ e: 'error', cookie, errno, message, ...(errorOffset !== undefined ? { errorOffset } : {}) }),
      done: (cookie) => events.push({ e: 'done', cookie }),
    },
  };
}

/** Reassembles READ data per cookie so results do not depend on how the input was split. */
function readBack(events: Event[], cookie: number, base: number, length: number): Buffer {
  const out = Buffer.alloc(length, 0xee);
  for (const ev of events) {
    if (ev.cookie !== cookie) continue;
    if (ev.e === 'data') Buffer.from(ev.data, 'hex').copy(out, ev.offset - base);
    if (ev.e === 'hole') out.fill(0, ev.offset - base, ev.offset - base + ev.length);
  }
  return out;
}

function parser(structured: boolean, expected: [number, ExpectedReply][], contextIds?: number[]): NbdReplyParser {
  const p = new NbdReplyParser({ structuredReplies: structured, contextIds });
  for (const [cookie, req] of expected) p.expect(cookie, req);
  return p;
}

function feed(p: NbdReplyParser, bytes: Buffer, sink: ReplySink, split: 'whole' | 'bytes' | number): void {
  if (split === 'whole') return p.push(bytes, sink);
  const step = split === 'bytes' ? 1 : split;
  for (let i = 0; i < bytes.length; i += step) {
    // each piece gets its own buffer that is scribbled over afterwards: the parser must not keep views
    const piece = Buffer.from(bytes.subarray(i, i + step));
    p.push(piece, sink);
    piece.fill(0xa5);
  }
}

const READ = (offset: number, length: number): ExpectedReply => ({ type: NBD_CMD_READ, offset, length });
const WRITE = (offset: number, length: number): ExpectedReply => ({ type: NBD_CMD_WRITE, offset, length });
const BS = (offset: number, length: number): ExpectedReply => ({ type: NBD_CMD_BLOCK_STATUS, offset, length });

describe('NbdReplyParser', () => {
  describe.each(['whole', 'bytes', 7, 13] as const)('input split %s', (split) => {
    it('decodes simple replies, including READ data without structured replies', () => {
      const { sink, events } = collector();
      const p = parser(false, [
        [1, WRITE(0, 512)],
        [2, READ(4096, 8)],
        [3, { type: NBD_CMD_FLUSH, offset: 0, length: 0 }],
      ]);
      const data = Buffer.from('0102030405060708', 'hex');
      feed(p, Buffer.concat([simpleReply(2, 0, data), simpleReply(3, 5), simpleReply(1)]), sink, split);
      expect(readBack(events, 2, 4096, 8)).toEqual(data);
      expect(events.filter((e) => e.e !== 'data')).toEqual([
        { e: 'done', cookie: 2 },
        { e: 'error', cookie: 3, errno: 5, message: '' },
        { e: 'done', cookie: 3 },
        { e: 'done', cookie: 1 },
      ]);
      expect(p.inFlight).toBe(0);
      expect(p.idle).toBe(true);
    });

    it('assembles a structured READ from out-of-order data and hole chunks', () => {
      const { sink, events } = collector();
      const p = parser(true, [[9, READ(1000, 40)]]);
      const a = Buffer.alloc(10, 1);
      const c = Buffer.alloc(10, 3);
      feed(p, Buffer.concat([offsetData(9, 1030, c), offsetHole(9, 1010, 20), offsetData(9, 1000, a), noneChunk(9)]), sink, split);
      expect(readBack(events, 9, 1000, 40)).toEqual(Buffer.concat([a, Buffer.alloc(20), c]));
      expect(events[events.length - 1]).toEqual({ e: 'done', cookie: 9 });
    });

    it('decodes block status for two contexts and error chunks with messages and offsets', () => {
      const { sink, events } = collector();
      const p = parser(true, [
        [4, BS(0, 1 << 20)],
        [5, READ(0, 4096)],
        [6, WRITE(8192, 4096)],
      ], [1, 2]);
      feed(
        p,
        Buffer.concat([
          blockStatus(4, 1, [[65536, 0], [983040, 3]], false),
          errorChunk(5, 5, 'disk on fire', false, 512),
          blockStatus(4, 2, [[1 << 20, 1]], true),
          errorChunk(6, 28, 'full'),
          offsetData(5, 0, Buffer.alloc(512, 9), true),
        ]),
        sink,
        split,
      );
      expect(events.filter((e) => e.e !== 'data')).toEqual([
        { e: 'bs', cookie: 4, contextId: 1, descriptors: [{ length: 65536, flags: 0 }, { length: 983040, flags: 3 }] },
        { e: 'error', cookie: 5, errno: 5, message: 'disk on fire', errorOffset: 512 },
        { e: 'bs', cookie: 4, contextId: 2, descriptors: [{ length: 1 << 20, flags: 1 }] },
        { e: 'done', cookie: 4 },
        { e: 'error', cookie: 6, errno: 28, message: 'full' },
        { e: 'done', cookie: 6 },
        { e: 'done', cookie: 5 },
      ]);
    });
  });

  it('lets the caller place READ data itself (skipData) and resumes parsing after the run', () => {
    const { sink, events } = collector();
    const p = parser(true, [[1, READ(0, 100)], [2, WRITE(0, 1)]]);
    const bytes = Buffer.concat([offsetData(1, 0, Buffer.alloc(100, 7), true), simpleReply(2)]);
    p.push(bytes.subarray(0, 40), sink); // header (20) + offset (8) + 12 data bytes
    expect(p.dataRemaining).toBe(88);
    expect(p.dataCookie).toBe(1);
    expect(p.dataNextOffset).toBe(12);
    p.skipData(50, sink);
    expect(p.dataRemaining).toBe(38);
    expect(() => p.skipData(39, sink)).toThrow(/outside the current data run/);
    p.skipData(38, sink);
    expect(p.dataRemaining).toBe(0);
    p.push(bytes.subarray(128), sink);
    expect(events.map((e) => e.e)).toEqual(['data', 'done', 'done']);
  });

  const malformed: [string, boolean, [number, ExpectedReply][], Buffer, RegExp][] = [
    ['bad magic', true, [[1, WRITE(0, 1)]], Buffer.from('deadbeef00000000000000000000000000000000', 'hex'), /bad reply magic 0xdeadbeef/],
    ['extended header magic', true, [[1, WRITE(0, 1)]], Buffer.from('6e8a278c00000000', 'hex'), /extended-header/],
    ['unknown cookie (simple)', false, [[1, WRITE(0, 1)]], simpleReply(2), /simple reply for unknown cookie 2/],
    ['unknown cookie (structured)', true, [[1, WRITE(0, 1)]], noneChunk(77), /unknown cookie 77/],
    ['huge cookie', true, [[1, WRITE(0, 1)]], Buffer.concat([Buffer.from('668e33ef00010000ffffffffffffffff00000000', 'hex')]), /unknown cookie/],
    ['successful simple reply to READ after structured negotiation', true, [[1, READ(0, 4)]], simpleReply(1), /successful simple reply to READ/],
    ['simple reply to BLOCK_STATUS', true, [[1, BS(0, 4)]], simpleReply(1), /extents need a structured reply/],
    ['structured chunk without negotiation', false, [[1, READ(0, 4)]], noneChunk(1), /structured replies were not negotiated/],
    ['simple reply after structured chunks', true, [[1, READ(0, 8)]], Buffer.concat([offsetData(1, 0, Buffer.alloc(4)), simpleReply(1)]), /after structured chunks/],
    ['NONE with payload', true, [[1, WRITE(0, 1)]], chunk(1, CHUNK.NONE, DONE, Buffer.alloc(4)), /NONE chunk with payload length 4/],
    ['NONE without DONE', true, [[1, WRITE(0, 1)]], chunk(1, CHUNK.NONE, 0), /NONE chunk without the DONE flag/],
    ['OFFSET_DATA for a WRITE', true, [[1, WRITE(0, 8)]], offsetData(1, 0, Buffer.alloc(8)), /OFFSET_DATA chunk in reply to WRITE/],
    ['OFFSET_DATA too short', true, [[1, READ(0, 8)]], chunk(1, CHUNK.OFFSET_DATA, DONE, Buffer.alloc(8)), /at least 9 required/],
    ['OFFSET_DATA longer than the request', true, [[1, READ(0, 8)]], offsetData(1, 0, Buffer.alloc(9)), /more than the 8 requested/],
    ['OFFSET_DATA outside the request', true, [[1, READ(4096, 8)]], offsetData(1, 4100, Buffer.alloc(8)), /outside the request 4096\+8/],
    ['OFFSET_DATA offset beyond 2^53', true, [[1, READ(0, 8)]], chunk(1, CHUNK.OFFSET_DATA, 0, Buffer.from('ffffffffffffffff01', 'hex')), /out of range/],
    ['overlapping chunks', true, [[1, READ(0, 16)]], Buffer.concat([offsetData(1, 0, Buffer.alloc(8)), offsetHole(1, 4, 8)]), /overlaps data already received/],
    ['READ that ends early', true, [[1, READ(0, 16)]], Buffer.concat([offsetData(1, 0, Buffer.alloc(8)), noneChunk(1)]), /ended after 8 of 16 bytes/],
    ['OFFSET_HOLE with wrong length', true, [[1, READ(0, 16)]], chunk(1, CHUNK.OFFSET_HOLE, DONE, Buffer.alloc(16)), /expected 12/],
    ['OFFSET_HOLE of size 0', true, [[1, READ(0, 16)]], offsetHole(1, 0, 0), /size 0/],
    ['BLOCK_STATUS for a READ', true, [[1, READ(0, 16)]], blockStatus(1, 1, [[16, 0]]), /BLOCK_STATUS chunk in reply to READ/],
    ['BLOCK_STATUS length not 4+8n', true, [[1, BS(0, 16)]], chunk(1, CHUNK.BLOCK_STATUS, DONE, Buffer.alloc(13)), /not 4 \+ 8\*n/],
    ['BLOCK_STATUS without descriptors', true, [[1, BS(0, 16)]], chunk(1, CHUNK.BLOCK_STATUS, DONE, Buffer.alloc(4)), /not 4 \+ 8\*n/],
    ['BLOCK_STATUS oversize', true, [[1, BS(0, 16)]], chunk(1, CHUNK.BLOCK_STATUS, DONE, Buffer.alloc(0), 0x7ffffffc), /exceeds the limit/],
    ['BLOCK_STATUS for an unknown context', true, [[1, BS(0, 16)]], blockStatus(1, 9, [[16, 0]]), /meta context id 9, which was not negotiated/],
    ['BLOCK_STATUS twice for one context', true, [[1, BS(0, 16)]], Buffer.concat([blockStatus(1, 1, [[16, 0]], false), blockStatus(1, 1, [[16, 0]])]), /second BLOCK_STATUS chunk/],
    ['BLOCK_STATUS extent of length 0', true, [[1, BS(0, 16)]], blockStatus(1, 1, [[0, 0]]), /has length 0/],
    ['BLOCK_STATUS reply without extents', true, [[1, BS(0, 16)]], noneChunk(1), /ended without any extents/],
    ['ERROR with error 0', true, [[1, WRITE(0, 1)]], errorChunk(1, 0, 'x'), /error value 0/],
    ['ERROR message length mismatch', true, [[1, WRITE(0, 1)]], chunk(1, CHUNK.ERROR, DONE, Buffer.from('00000005000a41', 'hex')), /does not match chunk length/],
    ['ERROR too short', true, [[1, WRITE(0, 1)]], chunk(1, CHUNK.ERROR, DONE, Buffer.from('0000000500', 'hex')), /impossible length 5/],
    ['ERROR too long', true, [[1, WRITE(0, 1)]], chunk(1, CHUNK.ERROR, DONE, Buffer.alloc(0), 1 << 20), /impossible length/],
    ['ERROR_OFFSET outside the request', true, [[1, READ(0, 16)]], errorChunk(1, 5, '', true, 16), /lies outside the request/],
    ['unknown error type with oversize message', true, [[1, WRITE(0, 1)]], chunk(1, 0x8009, DONE, Buffer.from('00000005000a41', 'hex')), /exceeds its payload/],
    ['unknown chunk type', true, [[1, WRITE(0, 1)]], chunk(1, 3, DONE), /unknown structured reply chunk type 3/],
  ];

  it.each(malformed)('rejects %s', (_name, structured, expected, bytes, message) => {
    for (const split of ['whole', 'bytes'] as const) {
      const p = parser(structured, expected, [1, 2]);
      const { sink } = collector();
      let thrown: unknown;
      try {
        feed(p, bytes, sink, split);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(NbdProtocolError);
      expect((thrown as Error).message).toMatch(message);
      expect(p.failed).toBe(true);
      // a failed parser stays failed
      expect(() => p.push(simpleReply(1), sink)).toThrow(NbdProtocolError);
    }
  });

  it('accepts an unknown error chunk type as an error', () => {
    const { sink, events } = collector();
    const p = parser(true, [[1, WRITE(0, 1)]]);
    p.push(chunk(1, 0x8009, DONE, Buffer.from('0000001c0002686900', 'hex')), sink);
    expect(events).toEqual([{ e: 'error', cookie: 1, errno: 28, message: 'hi' }, { e: 'done', cookie: 1 }]);
  });

  it('refuses to track one cookie twice', () => {
    const p = parser(true, [[1, WRITE(0, 1)]]);
    expect(() => p.expect(1, WRITE(0, 1))).toThrow(/already in flight/);
  });
});
