import { buildQemuNbdArgs, buildSocketExportArgs, MAX_CLIENTS, type QemuNbdExportSpec } from './qemu-nbd-args';

const PID_FILE = '/run/sendense/qemu-nbd-3f1c.pid';
const base: QemuNbdExportSpec = {
  leaseId: '3f1c0a2e-5b7d-4c1e-9a55-0e6f3c2b1a90',
  port: 10901,
  file: '/var/lib/sendense/disk0.qcow2',
  format: 'qcow2',
  readOnly: false,
  exportName: 'disk0',
};

describe('buildQemuNbdArgs', () => {
  it('builds a writable, persistent, shared export with the file last', () => {
    expect(buildQemuNbdArgs(base, PID_FILE)).toEqual([
      '--persistent', `--shared=${MAX_CLIENTS}`, '-b', '127.0.0.1', '-p', '10901', '-x', 'disk0',
      '--cache=writeback', '--discard=unmap', '--detect-zeroes=unmap', `--pid-file=${PID_FILE}`, '-f', 'qcow2', '/var/lib/sendense/disk0.qcow2',
    ]);
  });

  it('writes around the page cache (--cache=none) when asked to', () => {
    const args = buildQemuNbdArgs({ ...base, directIo: true }, PID_FILE);
    expect(args).toContain('--cache=none');
    expect(args).not.toContain('--cache=writeback');
  });

  it('never uses --fork: the server must stay our child', () => {
    expect(buildQemuNbdArgs(base, PID_FILE)).not.toContain('--fork');
  });

  it('adds -r and no discard options for a read-only export', () => {
    const args = buildQemuNbdArgs({ ...base, readOnly: true, format: 'raw' }, PID_FILE);
    expect(args).toContain('-r');
    expect(args.slice(-3, -1)).toEqual(['-f', 'raw']);
    expect(args.join(' ')).not.toMatch(/discard|detect-zeroes/);
  });

  it('exposes the allocation depth (-A) of a read-only export only, for copying one restore point between hubs', () => {
    expect(buildQemuNbdArgs({ ...base, readOnly: true }, PID_FILE)).toEqual([
      '--persistent', `--shared=${MAX_CLIENTS}`, '-b', '127.0.0.1', '-p', '10901', '-x', 'disk0',
      '--cache=writeback', '-r', '-A', `--pid-file=${PID_FILE}`, '-f', 'qcow2', '/var/lib/sendense/disk0.qcow2',
    ]);
    expect(buildQemuNbdArgs(base, PID_FILE)).not.toContain('-A');
  });

  it('exposes a dirty bitmap with -B NAME', () => {
    const args = buildQemuNbdArgs({ ...base, bitmap: 'sendense-1' }, PID_FILE);
    expect(args.slice(args.indexOf('-B'), args.indexOf('-B') + 2)).toEqual(['-B', 'sendense-1']);
    expect(args[args.length - 1]).toBe(base.file);
  });

  it('requires TLS with the pre-shared keys of a directory, on the bind address, when asked to', () => {
    const args = buildQemuNbdArgs({ ...base, tls: { pskDir: '/run/sendense/psk,1', bind: '0.0.0.0' } }, PID_FILE);
    expect(args.slice(args.indexOf('-b'), args.indexOf('-b') + 2)).toEqual(['-b', '0.0.0.0']);
    expect(args.slice(args.indexOf('--object'), args.indexOf('--object') + 3)).toEqual(['--object', 'tls-creds-psk,id=tls0,endpoint=server,dir=/run/sendense/psk,,1', '--tls-creds=tls0']);
    expect(args[args.length - 1]).toBe(base.file);
  });

  it('keeps an export name with spaces or a leading dash as one argument after -x', () => {
    const args = buildQemuNbdArgs({ ...base, exportName: '-r my disk' }, PID_FILE);
    expect(args[args.indexOf('-x') + 1]).toBe('-r my disk');
  });

  it.each([
    ['a lease id that could escape runDir', { leaseId: '../x' }, /leaseId/],
    ['a relative file', { file: 'disk.qcow2' }, /absolute/],
    ['a port out of range', { port: 70000 }, /port/],
    ['a fractional port', { port: 10900.5 }, /port/],
    ['an unknown format', { format: 'vmdk' }, /format/],
    ['an empty bitmap name', { bitmap: '' }, /bitmap/],
    ['a NUL in the export name', { exportName: 'a\0b' }, /NUL/],
    ['an over-long export name', { exportName: 'x'.repeat(4097) }, /exportName/],
    ['a relative key directory', { tls: { pskDir: 'psk', bind: '0.0.0.0' } }, /pskDir/],
    ['a bind that is not an address', { tls: { pskDir: '/psk', bind: 'any' } }, /bind/],
  ])('rejects %s', (_what, patch, message) => {
    expect(() => buildQemuNbdArgs({ ...base, ...patch } as QemuNbdExportSpec, PID_FILE)).toThrow(message);
  });
});

describe('buildSocketExportArgs', () => {
  it('exports read-only and persistent on a Unix socket, the pid file and the image last', () => {
    expect(buildSocketExportArgs({ file: '/vm/d.qcow2', format: 'qcow2', socket: '/r/d0.sock', exportName: 'disk', shared: 4, bitmap: 'sendense-A' }, '/r/d0.pid')).toEqual([
      '-r', '--aio=io_uring', '--persistent', '--shared=4', '-k', '/r/d0.sock', '-x', 'disk', '-B', 'sendense-A', '--pid-file=/r/d0.pid', '-f', 'qcow2', '/vm/d.qcow2',
    ]);
  });

  it("exports a restore's new disk writable, around the page cache where the filesystem allows it", () => {
    expect(buildSocketExportArgs({ file: '/img/new.qcow2', format: 'qcow2', socket: '/r/t.sock', exportName: 'vda', shared: 1, writable: { directIo: true } }, '/r/t.pid')).toEqual([
      '--cache=none', '--persistent', '--shared=1', '-k', '/r/t.sock', '-x', 'vda', '--pid-file=/r/t.pid', '-f', 'qcow2', '/img/new.qcow2',
    ]);
    expect(buildSocketExportArgs({ file: '/img/new.raw', format: 'raw', socket: '/r/t.sock', exportName: 'vda', shared: 1, writable: { directIo: false } })[0]).toBe('--cache=writeback');
  });
});
