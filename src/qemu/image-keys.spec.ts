import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainEncryption, ImageKeyError, ImageKeyring, imageArgs, imageJson, imageOptions, jsonImageFile, namesImage, readKeyFile, SECRET_ID } from './image-keys';

/** The first bytes of a qcow2 file as the keyring reads them: magic, version, backing name, crypt method. */
function fakeQcow2(file: string, encrypted: boolean, backing?: string): void {
  const header = Buffer.alloc(512);
  header.writeUInt32BE(0x514649fb, 0);
  header.writeUInt32BE(3, 4);
  if (backing) {
    header.writeBigUInt64BE(256n, 8);
    header.writeUInt32BE(Buffer.byteLength(backing), 16);
    header.write(backing, 256);
  }
  header.writeUInt32BE(encrypted ? 2 : 0, 32);
  writeFileSync(file, header);
}

describe('image keys', () => {
  let dir: string;
  let keyFile: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-keys-'));
    keyFile = join(dir, 'repo.key');
    writeFileSync(keyFile, 'a'.repeat(64));
    mkdirSync(join(dir, 'repo', 'vm', 'disk'), { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('fingerprints a key file by the SHA-256 of its bytes and refuses one qemu could not use', () => {
    expect(readKeyFile(keyFile)).toEqual({ fingerprint: 'sha256:ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb' });
    writeFileSync(join(dir, 'short'), 'x'.repeat(31));
    writeFileSync(join(dir, 'nul'), `${'x'.repeat(40)}\0`);
    writeFileSync(join(dir, 'latin1'), Buffer.concat([Buffer.alloc(40, 0x41), Buffer.from([0xe9])]));
    expect(() => readKeyFile('repo.key')).toThrow('must be an absolute path');
    expect(() => readKeyFile(join(dir, 'missing'))).toThrow(`key file ${join(dir, 'missing')} cannot be read: ENOENT`);
    expect(() => readKeyFile(join(dir, 'short'))).toThrow('holds 31 bytes; a key is 32 to 4096 bytes of text');
    expect(() => readKeyFile(join(dir, 'nul'))).toThrow('is not UTF-8 text without NUL bytes');
    expect(() => readKeyFile(join(dir, 'latin1'))).toThrow(ImageKeyError);
  });

  it('reads which files of a chain are encrypted from their headers, newest first, stopping at a name that is not a file', () => {
    const disk = join(dir, 'repo', 'vm', 'disk');
    fakeQcow2(join(disk, 'a.qcow2'), false);
    fakeQcow2(join(disk, 'b.qcow2'), true, 'a.qcow2');
    fakeQcow2(join(disk, 'c.qcow2'), true, 'b.qcow2');
    fakeQcow2(join(disk, 'overlay.qcow2'), false, 'nbd+unix:///disk?socket=/run/x.sock');
    expect(chainEncryption(join(disk, 'c.qcow2'))).toEqual([true, true, false]);
    expect(chainEncryption(join(disk, 'overlay.qcow2'))).toEqual([false]);
    expect(chainEncryption(join(disk, 'missing.qcow2'))).toEqual([]);
  });

  it("opens a file with its repository's key, checked against the recorded fingerprint, and says what is wrong when it cannot", () => {
    const keys = new ImageKeyring();
    const disk = join(dir, 'repo', 'vm', 'disk');
    fakeQcow2(join(disk, 'plain.qcow2'), false);
    fakeQcow2(join(disk, 'full.qcow2'), true);
    fakeQcow2(join(disk, 'incr.qcow2'), true, 'full.qcow2');
    const file = join(disk, 'incr.qcow2');
    expect(() => keys.keyForImage(file)).toThrow(`${file} is encrypted, and this hub has no key for it (no encrypted repository holds it)`);
    const fingerprint = readKeyFile(keyFile).fingerprint;
    keys.register({ root: join(dir, 'repo'), name: 'main', keyFile, fingerprint });
    expect(keys.keyForImage(file)).toEqual({ keyFile, encryptedLayers: [true, true] });
    // a chain in the clear needs no key, even in an encrypted repository
    expect(keys.keyForImage(join(disk, 'plain.qcow2'))).toBeUndefined();
    expect(keys.keyForNewFile(join(disk, 'new.qcow2'))).toBe(keyFile);
    expect(keys.keyForNewFile(join(dir, 'elsewhere', 'new.qcow2'))).toBeUndefined();

    writeFileSync(keyFile, 'b'.repeat(64));
    expect(() => keys.keyForImage(file)).toThrow(`repository main is encrypted with key ${fingerprint}, but key file ${keyFile} holds key ${readKeyFile(keyFile).fingerprint}`);
    rmSync(keyFile);
    expect(() => keys.keyForNewFile(join(disk, 'new.qcow2'))).toThrow(`repository main is encrypted with key ${fingerprint}, and this hub cannot use it: key file ${keyFile} cannot be read: ENOENT`);
    keys.unregister(join(dir, 'repo'));
    expect(keys.keyForNewFile(join(disk, 'new.qcow2'))).toBeUndefined();
  });

  it('names an encrypted image by its options, with the secret for each encrypted layer, and recognises those options', () => {
    const key = { keyFile: '/keys/a,b.key', encryptedLayers: [true, false, true] };
    expect(imageOptions('/r/x,y.qcow2', key)).toBe(`driver=qcow2,file.filename=/r/x,,y.qcow2,encrypt.key-secret=${SECRET_ID},backing.backing.encrypt.key-secret=${SECRET_ID}`);
    expect(imageArgs('/r/d.qcow2', undefined)).toEqual(['-f', 'qcow2', '/r/d.qcow2']);
    expect(imageArgs('/r/d.qcow2', key)).toEqual(['--object', `secret,id=${SECRET_ID},file=/keys/a,,b.key`, '--image-opts', imageOptions('/r/d.qcow2', key)]);
    const json = `json:${JSON.stringify(imageJson('/r/d.qcow2', key))}`;
    expect(jsonImageFile(json)).toBe('/r/d.qcow2');
    expect(jsonImageFile('d.qcow2')).toBeNull();
    expect(jsonImageFile('json:{not json')).toBeNull();
    expect(namesImage(imageOptions('/r/d.qcow2', key), '/r/d.qcow2')).toBe(true);
    expect(namesImage('/r/d.qcow2', '/r/d.qcow2')).toBe(true);
    expect(namesImage(imageOptions('/r/d.qcow2,,x', key), '/r/d.qcow2')).toBe(false);
    expect(namesImage(imageOptions('/r/d.qcow2.old', key), '/r/d.qcow2')).toBe(false);
  });
});
