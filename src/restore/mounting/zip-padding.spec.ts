import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { trimAfterEndRecord, ZipPaddingTrimmer } from './zip-padding';

const endRecord = (comment = '') => {
  const record = Buffer.alloc(22 + comment.length);
  record.write('PK\x05\x06', 0, 'latin1');
  record.writeUInt16LE(comment.length, 20);
  record.write(comment, 22, 'latin1');
  return record;
};

describe('ZipPaddingTrimmer', () => {
  it('cuts zero padding after the end record, keeping its comment', () => {
    const body = Buffer.from('local headers and central directory');
    expect(trimAfterEndRecord(Buffer.concat([body, endRecord(), Buffer.alloc(300)]))).toEqual(Buffer.concat([body, endRecord()]));
    expect(trimAfterEndRecord(Buffer.concat([body, endRecord('hi'), Buffer.alloc(5)]))).toEqual(Buffer.concat([body, endRecord('hi')]));
  });

  it('changes nothing without an end record or when non-zero bytes follow it', () => {
    const noRecord = Buffer.from('no record here\0\0\0');
    expect(trimAfterEndRecord(noRecord)).toEqual(noRecord);
    const trailingData = Buffer.concat([endRecord(), Buffer.from('x')]);
    expect(trimAfterEndRecord(trailingData)).toEqual(trailingData);
  });

  it('streams everything before the held-back tail untouched, across chunk boundaries', async () => {
    const body = Buffer.alloc(100_000, 'a');
    const whole = Buffer.concat([body, endRecord(), Buffer.alloc(490)]);
    const chunks = [whole.subarray(0, 7), whole.subarray(7, 65_536), whole.subarray(65_536)];
    const out = await text(Readable.from(chunks).pipe(new ZipPaddingTrimmer()));
    expect(Buffer.from(out, 'latin1').length).toBe(body.length + 22);
  });
});
