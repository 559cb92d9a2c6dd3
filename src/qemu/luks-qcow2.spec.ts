import { encryptedQcow2, KEY_SLOT_ITERATIONS, LUKS_AREA_BYTES, luksArea, MASTER_KEY_DIGEST_ITERATIONS } from './luks-qcow2';

const text = (area: Buffer, at: number, length: number) => area.subarray(at, at + length).toString('latin1').replace(/\0+$/, '');

describe('luksArea', () => {
  it("writes qemu's LUKS1 header: aes xts-plain64 sha256, a 64-byte key, slot 0 active at 4096 bytes, the payload after eight slots", async () => {
    const area = await luksArea(Buffer.from('a'.repeat(64)));
    expect(area.length).toBe(LUKS_AREA_BYTES);
    expect(area.subarray(0, 6)).toEqual(Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]));
    expect(area.readUInt16BE(6)).toBe(1);
    expect([text(area, 8, 32), text(area, 40, 32), text(area, 72, 32)]).toEqual(['aes', 'xts-plain64', 'sha256']);
    // payload offset in sectors: 8 + 8 slots of 504 sectors (64 * 4000 bytes rounded up to 4096), as qemu-img info shows them
    expect(area.readUInt32BE(104)).toBe(4040);
    expect(area.readUInt32BE(108)).toBe(64);
    expect(area.readUInt32BE(164)).toBe(MASTER_KEY_DIGEST_ITERATIONS);
    expect(text(area, 168, 40)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const slots = Array.from({ length: 8 }, (_, i) => {
      const at = 208 + i * 48;
      return { active: area.readUInt32BE(at), iterations: area.readUInt32BE(at + 4), offset: area.readUInt32BE(at + 40) * 512, stripes: area.readUInt32BE(at + 44) };
    });
    expect(slots[0]).toEqual({ active: 0x00ac71f3, iterations: KEY_SLOT_ITERATIONS, offset: 4096, stripes: 4000 });
    expect(slots.slice(1).map((s) => [s.active, s.iterations, s.offset])).toEqual(Array.from({ length: 7 }, (_, i) => [0xdead, 0, 4096 + 258048 * (i + 1)]));
    // the key material is there (encrypted), and only slot 0's
    expect(area.subarray(4096, 4096 + 256000).some((b) => b !== 0)).toBe(true);
    expect(area.subarray(4096 + 258048).every((b) => b === 0)).toBe(true);
  });

  it('makes a new master key, salts and uuid for every file', async () => {
    const [a, b] = [await luksArea(Buffer.from('a'.repeat(64))), await luksArea(Buffer.from('a'.repeat(64)))];
    expect(a.subarray(112, 208).equals(b.subarray(112, 208))).toBe(false);
    expect(a.subarray(4096, 4096 + 512).equals(b.subarray(4096, 4096 + 512))).toBe(false);
  });
});

describe('encryptedQcow2', () => {
  const luks = Buffer.alloc(LUKS_AREA_BYTES, 1);

  it('refuses a cluster size qemu would not take, a size that is not positive, and a backing name that does not fit the header', () => {
    expect(() => encryptedQcow2({ virtualSize: 1 << 20, clusterSize: 65535 }, luks)).toThrow('cluster size 65535 is not a power of two from 512 to 2 MiB');
    expect(() => encryptedQcow2({ virtualSize: 0 }, luks)).toThrow('virtual size must be a positive integer, got 0');
    expect(() => encryptedQcow2({ virtualSize: 1 << 20, backingFile: 'x'.repeat(1024) }, luks)).toThrow('backing file name of 1024 bytes does not fit the header');
    expect(() => encryptedQcow2({ virtualSize: 1 << 20, clusterSize: 512, backingFile: 'x'.repeat(400) }, luks)).toThrow('backing file name of 400 bytes does not fit the header');
  });

  it('counts every cluster it lays out once, the refcount blocks included, when they take more than one block', () => {
    const clusterSize = 512;
    const file = encryptedQcow2({ virtualSize: 64 << 20, clusterSize }, luks);
    const clusters = file.length / clusterSize;
    const perBlock = clusterSize / 2;
    expect(clusters).toBeGreaterThan(perBlock);
    const blocks = Math.ceil(clusters / perBlock);
    expect(Array.from({ length: blocks }, (_, i) => Number(file.readBigUInt64BE(clusterSize + i * 8)))).toEqual(Array.from({ length: blocks }, (_, i) => (2 + i) * clusterSize));
    const counts = Array.from({ length: blocks * perBlock }, (_, i) => file.readUInt16BE(2 * clusterSize + i * 2));
    expect(counts.slice(0, clusters).every((c) => c === 1)).toBe(true);
    expect(counts.slice(clusters).every((c) => c === 0)).toBe(true);
    // the crypto header extension names the LUKS area, which ends the file
    expect(file.readUInt32BE(112)).toBe(0x0537be77);
    const at = Number(file.readBigUInt64BE(120));
    expect(Number(file.readBigUInt64BE(128))).toBe(LUKS_AREA_BYTES);
    expect(file.subarray(at, at + LUKS_AREA_BYTES).equals(luks)).toBe(true);
    expect(at + Math.ceil(LUKS_AREA_BYTES / clusterSize) * clusterSize).toBe(file.length);
  });

  it('rounds a size that is not whole sectors up to the next sector, as qemu-img create does (qemu would read it rounded down)', () => {
    expect(Number(encryptedQcow2({ virtualSize: 1000 }, luks).readBigUInt64BE(24))).toBe(1024);
    expect(Number(encryptedQcow2({ virtualSize: (1 << 20) + 1 }, luks).readBigUInt64BE(24))).toBe((1 << 20) + 512);
    expect(Number(encryptedQcow2({ virtualSize: 1 << 20 }, luks).readBigUInt64BE(24))).toBe(1 << 20);
  });
});
