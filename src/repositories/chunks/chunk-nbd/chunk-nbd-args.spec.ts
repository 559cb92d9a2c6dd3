import { buildChunkNbdArgs, ChunkNbdSpec, CHUNK_NBD_MAIN, CHUNK_NBD_NODE_OPTIONS, parseChunkNbdArgs, runsChunkNbd } from './chunk-nbd-args';

describe('chunk-nbd arguments', () => {
  const pidFile = '/run/sendense/qemu-nbd-lease1.pid';
  const writeSpec: ChunkNbdSpec = {
    store: '/repo/chunks',
    keyFile: '/repo/key',
    point: { commit: 'vm1/rp-2/disk0', size: 10 * 1024 * 1024 + 512, base: 'vm1/rp-1/disk0' },
    listen: { host: '0.0.0.0', port: 10809 },
    exportName: 'target',
    tls: { pskDir: '/run/sendense/qemu-nbd-lease1.psk' },
  };
  const readSpec: ChunkNbdSpec = { store: '/repo/chunks', point: { read: 'vm1/rp-1/disk0' }, listen: { socket: '/run/x.sock' }, exportName: 'rp' };
  const parse = (spec: ChunkNbdSpec) => parseChunkNbdArgs(buildChunkNbdArgs(spec, pidFile).slice(CHUNK_NBD_NODE_OPTIONS.length + 1));

  it("starts with node's options and the compiled program, and holds the pid file the launcher looks for", () => {
    const args = buildChunkNbdArgs(writeSpec, pidFile);
    expect(args.slice(0, CHUNK_NBD_NODE_OPTIONS.length + 1)).toEqual([...CHUNK_NBD_NODE_OPTIONS, CHUNK_NBD_MAIN]);
    expect(runsChunkNbd(args)).toBe(true);
    // a process an earlier hub started, before node had options of its own here, is one too; qemu-nbd is not
    expect(runsChunkNbd(args.slice(CHUNK_NBD_NODE_OPTIONS.length))).toBe(true);
    expect(runsChunkNbd(['--fork', '-r', '/repo/vm1/rp-1.qcow2'])).toBe(false);
    expect(CHUNK_NBD_MAIN).toMatch(/\/dist\/src\/repositories\/chunks\/chunk-nbd\/chunk-nbd\.main\.js$/);
    expect(args).toContain(`--pid-file=${pidFile}`);
    // the launcher gives a command line with a bare -r the read-only environment; none of ours has one
    expect(buildChunkNbdArgs({ ...readSpec, exportName: '-r' }, pidFile)).not.toContain('-r');
  });

  it('parses what it builds back into the same spec, in both modes', () => {
    // a writer is told the process that built its command line: the hub it ends with
    expect(parse(writeSpec)).toEqual({ spec: writeSpec, pidFile, hubPid: process.pid });
    expect(parse(readSpec)).toEqual({ spec: readSpec, pidFile });
    const plain: ChunkNbdSpec = { store: '/s', point: { commit: 'a/b/c', size: 1 }, listen: { host: '127.0.0.1', port: 1 }, exportName: 'a=b ,c' };
    expect(parse(plain)).toEqual({ spec: plain, pidFile, hubPid: process.pid });
  });

  it('names every problem of a command line', () => {
    expect(() => parseChunkNbdArgs([])).toThrow(/--store is missing; --export-name is missing; --pid-file is missing; give either --point .* or --commit .*; give either --socket or --host and --port/);
    const base = ['--store=/s', '--export-name=x', `--pid-file=${pidFile}`, '--socket=/x.sock'];
    expect(() => parseChunkNbdArgs([...base, '--point=a/b/c', '--point=a/b/d'])).toThrow(/--point is given twice/);
    expect(() => parseChunkNbdArgs([...base, '--point=a/b/c', '-r'])).toThrow(/unknown argument "-r"/);
    expect(() => parseChunkNbdArgs([...base, '--point=a/b/c', '--verbose=1'])).toThrow(/unknown argument "--verbose=1"/);
    expect(() => parseChunkNbdArgs([...base, '--point=a/b/c', '--commit=a/b/d', '--size=1'])).toThrow(/give either --point .* or --commit/);
    expect(() => parseChunkNbdArgs([...base, '--point=a/b/c', '--size=1'])).toThrow(/--size and --base are for --commit/);
    const tcp = ['--store=/s', '--export-name=x', `--pid-file=${pidFile}`, '--host=127.0.0.1', '--port=10809'];
    expect(() => parseChunkNbdArgs([...tcp, '--commit=a/b/c'])).toThrow(/--commit needs --size/);
    for (const size of ['0', '-1', '1e3', '0x10', '', '99999999999999999']) expect(() => parseChunkNbdArgs([...tcp, '--commit=a/b/c', `--size=${size}`])).toThrow(/size .* must be a positive number of bytes/);
    expect(() => parseChunkNbdArgs([...tcp, '--commit=a/b/c', '--size=1', '--socket=/x.sock'])).toThrow(/give either --socket or --host and --port/);
    expect(() => parseChunkNbdArgs(['--store=/s', '--export-name=x', `--pid-file=${pidFile}`, '--port=10809', '--point=a/b/c'])).toThrow(/--host and --port go together/);
    expect(() => parseChunkNbdArgs([...base, '--point=a/b/c', '--hub-pid=1'])).toThrow(/--hub-pid is for --commit/);
    for (const pid of ['0', '-1', 'x', '']) expect(() => parseChunkNbdArgs([...tcp, '--commit=a/b/c', '--size=1', `--hub-pid=${pid}`])).toThrow(/--hub-pid .* must be a process id/);
  });

  it('refuses relative paths, bad listen addresses and what the NBD server cannot serve', () => {
    const problems = (spec: ChunkNbdSpec, pid = pidFile) => () => buildChunkNbdArgs(spec, pid);
    expect(problems({ ...readSpec, store: 'chunks' })).toThrow(/store "chunks" must be an absolute path/);
    expect(problems({ ...readSpec, keyFile: 'key' })).toThrow(/key file "key" must be an absolute path/);
    expect(problems(readSpec, 'x.pid')).toThrow(/pid file "x.pid" must be an absolute path/);
    expect(problems({ ...readSpec, listen: { socket: 'x.sock' } })).toThrow(/socket "x.sock" must be an absolute path/);
    expect(problems({ ...writeSpec, tls: { pskDir: 'psk' } })).toThrow(/TLS PSK dir "psk" must be an absolute path/);
    expect(problems({ ...readSpec, point: { read: '' } })).toThrow(/point must be a point name/);
    expect(problems({ ...writeSpec, listen: { socket: '/x.sock' }, tls: undefined })).not.toThrow();
    expect(problems({ ...readSpec, tls: { pskDir: '/psk' } })).toThrow(/TLS is served over TCP only/);
    expect(problems({ ...writeSpec, listen: { host: '::1', port: 10809 } })).toThrow(/host "::1" must be an IPv4 address/);
    expect(problems({ ...writeSpec, listen: { host: 'localhost', port: 10809 } })).toThrow(/host "localhost" must be an IPv4 address/);
    expect(problems({ ...writeSpec, listen: { host: '0.0.0.0', port: 10809 }, tls: undefined })).toThrow(/without TLS listens on loopback only/);
    expect(problems({ ...writeSpec, listen: { host: '127.0.0.1', port: 0 } })).toThrow(/port 0 is not a TCP port/);
    expect(problems({ ...readSpec, exportName: 'x'.repeat(4097) })).toThrow(/export name must be a string of at most 4096 bytes/);
    expect(problems({ ...readSpec, exportName: 'a\0b' })).toThrow(/no argument may contain NUL/);
  });
});
