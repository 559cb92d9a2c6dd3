import { promises as fs, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { spawnSync } from 'node:child_process';
import { createFileAtomic, removeDurably, removeStaleTemps, tempPathFor, writeFileAtomic } from './durable-fs';
import { readBackingFileName } from '../../qemu/qcow2-header';

describe('durable file helpers', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir('durable');
  });
  afterEach(async () => {
    await removeTempDir(dir);
  });

  it('createFileAtomic publishes once and refuses to replace, leaving no temp file', async () => {
    const file = join(dir, 'journal.json');
    await createFileAtomic(file, 'first');
    await expect(createFileAtomic(file, 'second')).rejects.toThrow(/EEXIST/);
    expect(await fs.readFile(file, 'utf8')).toBe('first');
    await writeFileAtomic(file, 'third');
    expect(await fs.readFile(file, 'utf8')).toBe('third');
    expect(await fs.readdir(dir)).toEqual(['journal.json']);
    expect(await removeDurably(file)).toBe(true);
    expect(await removeDurably(file)).toBe(false);
  });

  it('readBackingFileName rejects a file that is not qcow2', async () => {
    const file = join(dir, 'raw.img');
    await fs.writeFile(file, Buffer.alloc(4096));
    await expect(readBackingFileName(file)).rejects.toThrow(/not a qcow2 image/);
  });

  it('removes the temp files of writers that died, and only those', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const names = [`.journal.json.tmp-${dead}-0a1b2c3d`, `.journal.json.tmp-${process.pid}-0a1b2c3d`, `.journal.json.tmp-1-0a1b2c3d`, 'journal.json', '.journal.json.tmp-x'];
    for (const name of names) await fs.writeFile(join(dir, name), 'x');
    expect(await removeStaleTemps(dir)).toEqual([`.journal.json.tmp-${dead}-0a1b2c3d`]);
    expect((await fs.readdir(dir)).sort()).toEqual(names.filter((n) => !n.includes(`-${dead}-`)).sort());
  });

  it("judges a temp file by its host: another host's is left alone, this host's from before its reboot is litter, a same-named clone's live one is not", async () => {
    const sub = await fs.mkdtemp(join(dir, 'hosts-'));
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    // what this process writes: .<file>.tmp-<pid>-<host tag><boot tag>-<random>
    const mine = basename(tempPathFor(join(sub, 'rp-1.json')));
    const [, tags] = /\.tmp-\d+-([0-9a-f]{12})-[0-9a-f]{8}$/.exec(mine)!;
    const [host, boot] = [tags.slice(0, 6), tags.slice(6)];
    const other = (hex: string) => hex.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const names = {
      live: mine,
      deadHere: `.rp-1.json.tmp-${dead}-${host}${boot}-0a1b2c3d`,
      deadElsewhere: `.rp-1.json.tmp-${dead}-${other(host)}${boot}-0a1b2c3d`,
      beforeReboot: `.rp-1.json.tmp-${process.pid}-${host}${other(boot)}-0a1b2c3d`,
    };
    // another boot's temp that is being written now: a host given this host's name (a clone) on a shared store
    const cloneWriting = `.rp-2.json.tmp-${dead}-${host}${other(boot)}-0a1b2c3d`;
    for (const name of [...Object.values(names), cloneWriting]) await fs.writeFile(join(sub, name), 'x');
    // written before this host booted
    const beforeBoot = new Date(Date.now() - 1000 * (Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) + 60));
    await fs.utimes(join(sub, names.beforeReboot), beforeBoot, beforeBoot);
    expect((await removeStaleTemps(sub)).sort()).toEqual([names.deadHere, names.beforeReboot].sort());
    expect((await fs.readdir(sub)).sort()).toEqual([names.live, names.deadElsewhere, cloneWriting].sort());
  });
});
