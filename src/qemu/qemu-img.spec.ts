import { isLockMessage, parseImageInfo, progressReader, QemuImgError } from './qemu-img';

describe('qemu-img output', () => {
  it('parses qemu-img info JSON with bitmaps', () => {
    const info = parseImageInfo(
      JSON.stringify({
        'virtual-size': 67108864,
        format: 'qcow2',
        'format-specific': { type: 'qcow2', data: { bitmaps: [{ flags: ['in-use', 'auto'], name: 'sendense-A', granularity: 65536 }] } },
      }),
    );
    expect(info).toEqual({ format: 'qcow2', virtualSize: 67108864, encrypted: false, bitmaps: [{ name: 'sendense-A', granularity: 65536, flags: ['in-use', 'auto'], enabled: true, inUse: true }] });
    expect(parseImageInfo(JSON.stringify({ 'virtual-size': 1, format: 'raw', 'backing-filename': 'b' }))).toEqual({ format: 'raw', virtualSize: 1, encrypted: false, bitmaps: [], backingFile: 'b' });
  });

  it("reads -p's progress however the output is cut: each share once it is whole, the last of a chunk only", () => {
    const seen: number[] = [];
    const read = progressReader((share) => seen.push(share));
    read('    (0.00/100%)\r    (3.12/10');
    read('0%)\r    (6.25/100%)\r    (9.38/100%)\r');
    read('    (100.00/100%)\r\n');
    read('no progress here');
    expect(seen.map((share) => Math.round(share * 10_000))).toEqual([0, 938, 10_000]);
  });

  it('recognises 7.2 lock failures on the error itself', () => {
    expect(new QemuImgError(['info', 'a.qcow2'], 1, `qemu-img: Could not open 'a.qcow2': Failed to get "write" lock\nIs another process using the image [a.qcow2]?\n`).locked).toBe(true);
    expect(new QemuImgError(['info', 'a.qcow2'], 1, `qemu-img: Could not open 'a.qcow2': No such file or directory`).locked).toBe(false);
    expect(isLockMessage('Failed to lock byte 100')).toBe(true);
  });
});
