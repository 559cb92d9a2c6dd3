import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ext4Image } from '../../../../test/fixtures/restore/filesystem-images';
import { chunkNbdProcesses } from '../../../../test/support/chunk-nbd-processes';
import { freePort } from '../../../../test/support/processes';
import { ChildProcessHandle } from '../../../process/child-process';
import { runProcess } from '../../../process/run-process';
import { QemuNbdLaunch, spawnQemuNbd, waitUntilServing } from '../../../qemu/qemu-nbd-launcher';
import { ChunkStore } from '../chunk-store';
import { ChunkNbdSpec } from './chunk-nbd-args';
import { chunkNbdLaunch } from './launch';

const MiB = 1024 * 1024;
const PSK_IDENTITY = 'sendense';

/**
 * The chunk store's NBD process run as the hub runs qemu-nbd (spawnQemuNbd, waitUntilServing), written and read by
 * real clients: nbdcopy and qemu-io write, qemu-img and nbdinfo read. Runs the program `npm run build` compiled.
 */
describe('chunk-nbd: a chunk-store point served by its own process, in place of qemu-nbd', () => {
  const { path, spawn, running } = chunkNbdProcesses('chunk-nbd');
  let count = 0;

  /** Serving: its pid file names it and it holds the listening socket. */
  async function serve(spec: ChunkNbdSpec): Promise<{ handle: ChildProcessHandle; launch: QemuNbdLaunch }> {
    const started = spawn(spec);
    const outcome = await waitUntilServing(started.handle, started.launch, 15_000);
    if (outcome !== 'ready') throw new Error(`chunk-nbd ${outcome}: ${readFileSync(started.launch.logFile, 'utf8')}`);
    return started;
  }

  /** SIGTERM, as the manager stops an export; a clean end leaves nothing in the log (stdout and stderr). */
  async function stop({ handle, launch }: { handle: ChildProcessHandle; launch: QemuNbdLaunch }): Promise<void> {
    handle.signal('SIGTERM');
    const status = await handle.exited;
    expect({ status, log: readFileSync(launch.logFile, 'utf8') }).toEqual({ status: { code: 0, signal: null }, log: '' });
  }

  /** A start that fails: exit code 1, no pid file, one line on stderr (returned). */
  async function refused(spec: ChunkNbdSpec): Promise<string> {
    const { handle, launch } = spawn(spec);
    expect(await waitUntilServing(handle, launch, 15_000)).toBe('exited');
    expect(await handle.exited).toEqual({ code: 1, signal: null });
    expect(existsSync(launch.pidFile)).toBe(false);
    const log = readFileSync(launch.logFile, 'utf8');
    expect(log).toMatch(/^chunk-nbd: [^\n]+\n$/);
    return log;
  }

  async function newStore(name: string, key?: Buffer): Promise<{ store: string; keyFile?: string }> {
    const store = path(name);
    await fs.mkdir(store);
    if (!key) return { store };
    const keyFile = path(`${name}.key`);
    await fs.writeFile(keyFile, key, { mode: 0o600 });
    return { store, keyFile };
  }

  async function pskDir(name: string): Promise<{ pskDir: string; keys: string }> {
    const pskDir = path(name);
    await fs.mkdir(pskDir, { mode: 0o700 });
    const keys = join(pskDir, 'keys.psk');
    await fs.writeFile(keys, `${PSK_IDENTITY}:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    return { pskDir, keys };
  }

  const pointFile = (store: string, name: string) => join(store, 'points', `${name}.idx`);
  const socketUri = (socket: string, exportName: string) => `nbd+unix:///${exportName}?socket=${socket}`;

  /** A random disk with some zeros and some text: chunks to store, blocks to skip, and chunks to compress. */
  async function randomDisk(name: string, size: number): Promise<string> {
    const disk = Buffer.alloc(size);
    randomBytes(size).copy(disk);
    disk.fill(0, Math.floor(size / 3), Math.floor(size / 2));
    Buffer.from('chunk-nbd '.repeat(100_000)).copy(disk, Math.floor(size / 2) + 12_345);
    await fs.writeFile(path(name), disk);
    return path(name);
  }

  /** A committed point read by qemu-img through a read-mode process on a Unix socket, compared with a raw image. */
  async function expectPoint(store: { store: string; keyFile?: string }, point: string, raw: string): Promise<void> {
    const socket = path(`read-${++count}.sock`);
    const reader = await serve({ ...store, point: { read: point }, listen: { socket }, exportName: 'rp' });
    try {
      await runProcess('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', socketUri(socket, 'rp'), raw]);
    } finally {
      await stop(reader);
    }
  }

  it('takes a disk from nbdcopy over TLS-PSK, commits it on SIGTERM, and serves it read-only over TLS to qemu-img', async () => {
    const tree = path('tree');
    await fs.mkdir(tree);
    await runProcess('cp', ['-a', '/usr/share/common-licenses', join(tree, 'licenses')]);
    // more than the 32 MiB a writer seals on its main thread: the rest goes through its worker threads (a reader opens all on its main thread)
    await fs.writeFile(join(tree, 'random.bin'), randomBytes(40 * MiB));
    const raw = path('ext4.raw');
    const size = 56 * MiB + 4096;
    await ext4Image('target')(raw, size, tree);
    const store = await newStore('tls', randomBytes(32));
    const psk = await pskDir('tls.psk');

    const port = await freePort();
    // a hub run where node trusts extra authorities: its server, which verifies none, does not load them at its start
    const extraCas = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = '/etc/ssl/certs/ca-certificates.crt';
    const writer = await serve({ ...store, point: { commit: 'vm1/rp-1/disk0', size }, listen: { host: '127.0.0.1', port }, exportName: 'target', tls: { pskDir: psk.pskDir } }).finally(() => {
      if (extraCas === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
      else process.env.NODE_EXTRA_CA_CERTS = extraCas;
    });
    const environment = readFileSync(`/proc/${writer.handle.pid}/environ`, 'utf8').split('\0');
    expect(environment.filter((v) => /^(NODE_EXTRA_CA_CERTS|LC_ALL)=/.test(v))).toEqual(['LC_ALL=C']);
    // TLS is required: a plain client is refused
    await expect(runProcess('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/target`])).rejects.toThrow();
    await runProcess('nbdcopy', ['--flush', raw, `nbds://${PSK_IDENTITY}@127.0.0.1:${port}/target?tls-psk-file=${psk.keys}`]);
    // nothing is a point before the stop
    expect(existsSync(pointFile(store.store, 'vm1/rp-1/disk0'))).toBe(false);
    await stop(writer);
    expect(existsSync(pointFile(store.store, 'vm1/rp-1/disk0'))).toBe(true);

    const readPort = await freePort();
    const reader = await serve({ ...store, point: { read: 'vm1/rp-1/disk0' }, listen: { host: '127.0.0.1', port: readPort }, exportName: 'rp', tls: { pskDir: psk.pskDir } });
    try {
      const nbd = { driver: 'nbd', server: { type: 'inet', host: '127.0.0.1', port: String(readPort) }, export: 'rp', 'tls-creds': 'tls0' };
      await runProcess('qemu-img', ['compare', '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${psk.pskDir},username=${PSK_IDENTITY}`, '-f', 'raw', '-F', 'raw', `json:${JSON.stringify({ driver: 'raw', file: nbd })}`, raw]);
      const info = JSON.parse((await runProcess('nbdinfo', ['--json', `nbds://${PSK_IDENTITY}@127.0.0.1:${readPort}/rp?tls-psk-file=${psk.keys}`])).stdout);
      expect(info.exports[0]).toMatchObject({ 'export-size': size, is_read_only: true });
    } finally {
      await stop(reader);
    }
  });

  it('leaves no point when SIGKILLed while writing; the store opens after it, without the dead writer’s pack', async () => {
    const store = await newStore('killed');
    const raw = await randomDisk('killed.raw', 12 * MiB);
    const port = await freePort();
    const { handle } = await serve({ ...store, point: { commit: 'vm1/rp-1/disk0', size: 12 * MiB }, listen: { host: '127.0.0.1', port }, exportName: 'target' });
    // no flush: the pack being written is still a temp file of the process
    await runProcess('nbdcopy', [raw, `nbd://127.0.0.1:${port}/target`]);
    const temps = async () => (await fs.readdir(join(store.store, 'packs'))).filter((name) => name.includes('.tmp-'));
    expect(await temps()).toEqual([expect.stringContaining(`.tmp-${handle.pid}-`)]);
    handle.signal('SIGKILL');
    expect(await handle.exited).toEqual({ code: null, signal: 'SIGKILL' });

    expect(existsSync(pointFile(store.store, 'vm1/rp-1/disk0'))).toBe(false);
    const reopened = await ChunkStore.open(store.store, { key: null });
    await expect(reopened.readPoint('vm1/rp-1/disk0')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await temps()).toEqual([]);
    // the name is still free: a new writer commits under it
    const againPort = await freePort();
    const again = await serve({ ...store, point: { commit: 'vm1/rp-1/disk0', size: 12 * MiB }, listen: { host: '127.0.0.1', port: againPort }, exportName: 'target' });
    await runProcess('nbdcopy', [raw, `nbd://127.0.0.1:${againPort}/target`]);
    await stop(again);
    await expectPoint(store, 'vm1/rp-1/disk0', raw);
  });

  it('a writer whose hub is killed ends by itself without committing; a reader stays', async () => {
    const store = await newStore('orphaned');
    const raw = await randomDisk('orphaned.raw', 4 * MiB);
    await (await ChunkStore.open(store.store, { key: null })).commitPoint('vm1/rp-0/disk0', 4 * MiB, new Array(64).fill(null));
    // a stand-in hub: a shell that starts a writer and a reader as the hub does (its children), then is killed
    const port = await freePort();
    const writerArgs = chunkNbdLaunch({ ...store, point: { commit: 'vm1/rp-1/disk0', size: 4 * MiB }, listen: { host: '127.0.0.1', port }, exportName: 'target' }, { pidFile: path('w.pid'), logFile: path('w.log') }, false);
    const readerArgs = chunkNbdLaunch({ ...store, point: { read: 'vm1/rp-0/disk0' }, listen: { socket: path('r.sock') }, exportName: 'rp' }, { pidFile: path('r.pid'), logFile: path('r.log') }, false);
    const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
    const line = (l: QemuNbdLaunch) => [l.binary!, ...l.args].map(quote).join(' ');
    // the writer's hub is the shell ($$), not this test
    const writerLine = line(writerArgs).replace(quote(`--hub-pid=${process.pid}`), () => '"--hub-pid=$$"');
    expect(writerLine).toContain('--hub-pid=$$');
    const hub = spawnQemuNbd({ binary: 'bash', args: ['-c', `${writerLine} 2>${quote(path('w.log'))} & ${line(readerArgs)} & exec sleep 600`, `--pid-file=${path('hub.pid')}`], pidFile: path('hub.pid'), listen: { port }, logFile: path('hub.log'), detached: false });
    running.add(hub);
    void hub.exited.then(() => running.delete(hub));
    const pidOf = async (file: string) => {
      for (let i = 0; i < 300 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
      return Number(readFileSync(file, 'utf8'));
    };
    const [writer, reader] = [await pidOf(path('w.pid')), await pidOf(path('r.pid'))];
    await runProcess('nbdcopy', [raw, `nbd://127.0.0.1:${port}/target`]);
    hub.signal('SIGKILL');
    await hub.exited;
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && alive(writer); i++) await new Promise((r) => setTimeout(r, 50));
    expect({ writer: alive(writer), reader: alive(reader) }).toEqual({ writer: false, reader: true });
    process.kill(reader, 'SIGTERM');
    for (let i = 0; i < 100 && alive(reader); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(pointFile(store.store, 'vm1/rp-1/disk0'))).toBe(false);
    expect(readFileSync(path('w.log'), 'utf8')).toContain('the point vm1/rp-1/disk0 is not committed');
    expect(await fs.readdir(join(store.store, 'writers'))).toEqual([]);
  });

  it('a writer whose hub was gone before it could look at its parent ends at once: no pid file, no point, no registration', async () => {
    const store = await newStore('early');
    // a hub killed while node was still loading the writer: the pid it was given is not its parent by the time it runs
    const gone = ChildProcessHandle.spawn('true', [], { detached: false, logFile: path('gone.log') });
    await gone.exited;
    const launch = chunkNbdLaunch({ ...store, point: { commit: 'vm1/rp-1/disk0', size: MiB }, listen: { host: '127.0.0.1', port: await freePort() }, exportName: 'target' }, { pidFile: path('early.pid'), logFile: path('early.log') }, false);
    const args = launch.args.map((a) => (a === `--hub-pid=${process.pid}` ? `--hub-pid=${gone.pid}` : a));
    expect(args).toContain(`--hub-pid=${gone.pid}`);
    const writer = spawnQemuNbd({ ...launch, args });
    running.add(writer);
    void writer.exited.then(() => running.delete(writer));
    expect(await waitUntilServing(writer, launch, 15_000)).toBe('exited');
    expect(await writer.exited).toEqual({ code: 1, signal: null });
    expect(readFileSync(launch.logFile, 'utf8')).toBe(`chunk-nbd: the hub that started this writer (pid ${gone.pid}) is gone: the point vm1/rp-1/disk0 is not committed\n`);
    expect(existsSync(launch.pidFile)).toBe(false);
    expect(existsSync(pointFile(store.store, 'vm1/rp-1/disk0'))).toBe(false);
    expect(await fs.readdir(join(store.store, 'writers')).catch(() => [])).toEqual([]);
  });

  it('writes a point that follows another: only what qemu-io rewrites changes, the rest reads as the base', async () => {
    const store = await newStore('base', randomBytes(32));
    const size = 6 * MiB + 4096;
    const base = await randomDisk('base.raw', size);
    const firstPort = await freePort();
    const first = await serve({ ...store, point: { commit: 'vm1/rp-1/disk0', size }, listen: { host: '127.0.0.1', port: firstPort }, exportName: 'target' });
    await runProcess('nbdcopy', [base, `nbd://127.0.0.1:${firstPort}/target`]);
    await stop(first);

    const port = await freePort();
    const next = await serve({ ...store, point: { commit: 'vm1/rp-2/disk0', size, base: 'vm1/rp-1/disk0' }, listen: { host: '127.0.0.1', port }, exportName: 'target' });
    // parts of blocks and a zeroed range, as a backup of changed blocks writes them
    await runProcess('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 1000003 100000', '-c', 'write -z 4194304 65536', '-c', `write -P 0x5c ${size - 700} 700`, `nbd://127.0.0.1:${port}/target`]);
    await stop(next);

    const changed = await fs.readFile(base);
    changed.fill(0xab, 1_000_003, 1_100_003);
    changed.fill(0, 4 * MiB, 4 * MiB + 65536);
    changed.fill(0x5c, size - 700, size);
    await fs.writeFile(path('changed.raw'), changed);
    await expectPoint(store, 'vm1/rp-2/disk0', path('changed.raw'));
    await expectPoint(store, 'vm1/rp-1/disk0', base);
    // the blocks it did not touch are the base's own chunks
    const opened = await ChunkStore.open(store.store, { key: await fs.readFile(store.keyFile!) });
    const [one, two] = [await opened.readPoint('vm1/rp-1/disk0'), await opened.readPoint('vm1/rp-2/disk0')];
    const differing = one.blocks.filter((b, i) => JSON.stringify(b) !== JSON.stringify(two.blocks[i])).length;
    expect(differing).toBe(4);
  });

  it('lets two processes write two points into one store at once; both commit and read back', async () => {
    const store = await newStore('shared', randomBytes(32));
    const size = 10 * MiB;
    const [a1, a2, b] = [await randomDisk('a1.raw', size), await randomDisk('a2.raw', size), await randomDisk('b.raw', size)];
    const portA = await freePort();
    const writerA = await serve({ ...store, point: { commit: 'vm1/rp-1/disk0', size }, listen: { host: '127.0.0.1', port: portA }, exportName: 'target' });
    await runProcess('nbdcopy', [a1, `nbd://127.0.0.1:${portA}/target`]);
    // B opens the store while A's pack is a temp file: a live writer's temp is not B's to remove
    const portB = await freePort();
    const writerB = await serve({ ...store, point: { commit: 'vm2/rp-1/disk0', size }, listen: { host: '127.0.0.1', port: portB }, exportName: 'target' });
    expect((await fs.readdir(join(store.store, 'packs'))).some((name) => name.includes(`.tmp-${writerA.handle.pid}-`))).toBe(true);
    // both put new chunks at once: A is overwritten with another disk while B takes its first
    await Promise.all([runProcess('nbdcopy', [b, `nbd://127.0.0.1:${portB}/target`]), runProcess('nbdcopy', [a2, `nbd://127.0.0.1:${portA}/target`])]);
    await Promise.all([stop(writerA), stop(writerB)]);
    await expectPoint(store, 'vm1/rp-1/disk0', a2);
    await expectPoint(store, 'vm2/rp-1/disk0', b);
  });

  it('exits 1 with the reason when the commit at SIGTERM fails (the name was taken meanwhile)', async () => {
    const store = await newStore('taken');
    const port = await freePort();
    const writer = await serve({ ...store, point: { commit: 'vm1/rp-1/disk0', size: MiB }, listen: { host: '127.0.0.1', port }, exportName: 'target' });
    const other = await ChunkStore.open(store.store, { key: null });
    const point = await other.writePoint(MiB, null);
    await point.commit('vm1/rp-1/disk0');
    await point.close();
    writer.handle.signal('SIGTERM');
    expect(await writer.handle.exited).toEqual({ code: 1, signal: null });
    expect(readFileSync(writer.launch.logFile, 'utf8')).toMatch(/^chunk-nbd: the point vm1\/rp-1\/disk0 was not committed: .*EEXIST[^\n]*\n$/);
  });

  it('refuses to start, in one line on stderr and without a pid file: wrong key, missing store or point, a taken name or port', async () => {
    const key = randomBytes(32);
    const store = await newStore('keyed', key);
    const made = await ChunkStore.open(store.store, { key });
    const writer = await made.writePoint(MiB, null);
    await writer.write(0, randomBytes(MiB));
    await writer.commit('vm1/rp-1/disk0');
    await writer.close();
    const wrongKey = path('wrong.key');
    await fs.writeFile(wrongKey, randomBytes(32));
    const socket = path('refused.sock');
    const read = { store: store.store, point: { read: 'vm1/rp-1/disk0' }, listen: { socket }, exportName: 'rp' };

    expect(await refused({ ...read, keyFile: wrongKey })).toMatch(/cannot open the store .*keyed: .* does not open with this repository's key/);
    expect(await refused({ ...read, keyFile: path('nokey') })).toMatch(/cannot read the key file .*nokey/);
    expect(await refused({ ...read, keyFile: store.keyFile, store: path('nostore') })).toMatch(/the store .*nostore does not exist/);
    expect(await refused({ ...read, keyFile: store.keyFile, point: { read: 'vm1/rp-9/disk0' } })).toMatch(/the point vm1\/rp-9\/disk0 does not exist/);
    const write = { ...store, exportName: 'target' };
    expect(await refused({ ...write, point: { commit: 'vm1/rp-1/disk0', size: MiB }, listen: { host: '127.0.0.1', port: await freePort() } })).toMatch(/the point vm1\/rp-1\/disk0 exists already/);
    expect(await refused({ ...write, point: { commit: 'vm1/rp-2/disk0', size: MiB / 2, base: 'vm1/rp-1/disk0' }, listen: { host: '127.0.0.1', port: await freePort() } })).toMatch(/a point follows one of its own size or larger/);
    const squatter = createServer();
    const port = await new Promise<number>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve((squatter.address() as { port: number }).port)));
    try {
      expect(await refused({ ...write, point: { commit: 'vm1/rp-2/disk0', size: MiB }, listen: { host: '127.0.0.1', port } })).toMatch(/cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    expect(existsSync(pointFile(store.store, 'vm1/rp-2/disk0'))).toBe(false);
    expect(existsSync(socket)).toBe(false);
  });

  it('serves a point read-only on a Unix socket to nbdinfo and qemu-img convert, and removes the socket when stopped', async () => {
    const store = await newStore('socket');
    const size = 5 * MiB + 512;
    const raw = await randomDisk('socket.raw', size);
    const made = await ChunkStore.open(store.store, { key: null });
    const writer = await made.writePoint(size, null);
    await writer.write(0, await fs.readFile(raw));
    await writer.commit('vm1/rp-1/disk0');
    await writer.close();

    const socket = path('rp.sock');
    // a socket a killed server left behind does not keep a new one from starting
    await runProcess(process.execPath, ['-e', 'require("net").createServer().listen(process.argv[1], () => process.exit(0))', socket]);
    expect((await fs.lstat(socket)).isSocket()).toBe(true);
    const reader = await serve({ ...store, point: { read: 'vm1/rp-1/disk0' }, listen: { socket }, exportName: 'rp' });
    const info = JSON.parse((await runProcess('nbdinfo', ['--json', socketUri(socket, 'rp')])).stdout);
    expect(info.exports[0]).toMatchObject({ 'export-size': size, is_read_only: true, can_multi_conn: true });
    const copy = path('socket-copy.raw');
    await runProcess('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', socketUri(socket, 'rp'), copy]);
    expect((await fs.readFile(copy)).equals(await fs.readFile(raw))).toBe(true);
    await expect(runProcess('qemu-io', ['-f', 'raw', '-c', 'write 0 512', socketUri(socket, 'rp')])).rejects.toThrow();
    await stop(reader);
    expect(existsSync(socket)).toBe(false);
  });
});
