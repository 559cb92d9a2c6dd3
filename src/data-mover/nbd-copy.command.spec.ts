import { nbdCopyCommand, parseNbdCopyArgs, UsageError } from './nbd-copy.command';

const SRC = 'nbd://127.0.0.1:11000/src';
const DST = 'nbd+unix:///dst?socket=/tmp/d.sock';

describe('parseNbdCopyArgs', () => {
  it('parses SRC DST and options in either form', () => {
    expect(parseNbdCopyArgs([SRC, DST])).toEqual({ source: SRC, target: DST });
    expect(parseNbdCopyArgs(['--bitmap', 'b1', SRC, '--requests=32', DST, '--request-size', '1M'])).toEqual({
      source: SRC,
      target: DST,
      bitmap: 'b1',
      requests: 32,
      requestSize: 1024 * 1024,
    });
    expect(parseNbdCopyArgs(['nbd', 'copy', SRC, DST, '--request-size=65536'])).toMatchObject({ requestSize: 65536 });
    expect(parseNbdCopyArgs([SRC, DST, '--request-size', '512KiB'])).toMatchObject({ requestSize: 512 * 1024 });
  });

  it.each([
    [[], /expected SRC and DST NBD URIs, got 0/],
    [[SRC], /got 1 argument/],
    [[SRC, DST, 'extra'], /unexpected argument "extra"/],
    [[SRC, SRC], /same export/],
    [['http://x', DST], /SRC: invalid NBD URI "http:\/\/x": unknown scheme http/],
    [[SRC, 'nbd+unix:///x'], /DST: .*needs \?socket=PATH/],
    [[SRC, DST, '--bitmap'], /--bitmap needs a value/],
    [[SRC, DST, '--bitmap', '--requests', '4'], /--bitmap needs a value/],
    [[SRC, DST, '--bitmap='], /bitmap name/],
    [[SRC, DST, '--requests', '0'], /--requests must be an integer from 1 to 1024/],
    [[SRC, DST, '--requests', '2.5'], /--requests must be an integer/],
    [[SRC, DST, '--requests', '5000'], /from 1 to 1024/],
    [[SRC, DST, '--request-size', 'big'], /is not a byte count/],
    [[SRC, DST, '--request-size', '100'], /between 4096 and 32M/],
    [[SRC, DST, '--request-size', '64M'], /between 4096 and 32M/],
    [[SRC, DST, '--requests', '4', '--requests', '8'], /given twice/],
    [[SRC, DST, '--frobnicate'], /unknown option --frobnicate/],
    [[SRC, DST, '-x'], /unknown option -x/],
  ])('rejects %j', (argv, message) => {
    expect(() => parseNbdCopyArgs(argv)).toThrow(UsageError);
    expect(() => parseNbdCopyArgs(argv)).toThrow(message);
  });
});

describe('nbdCopyCommand', () => {
  function capture() {
    const out = { stdout: '', stderr: '' };
    return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t), signals: [] } };
  }

  it('exits 2 with the message and usage for bad arguments', async () => {
    const { out, io } = capture();
    expect(await nbdCopyCommand(['--requests', 'x', SRC, DST], io)).toBe(2);
    expect(out.stderr).toMatch(/^sendense nbd copy: --requests must be an integer/);
    expect(out.stderr).toMatch(/usage: sendense nbd copy SRC DST/);
    expect(out.stdout).toBe('');
  });

  it('prints usage and exits 0 for --help', async () => {
    const { out, io } = capture();
    expect(await nbdCopyCommand(['--help'], io)).toBe(0);
    expect(out.stdout).toMatch(/usage: sendense nbd copy/);
  });

  it('exits 1 with a clear message when an export cannot be reached', async () => {
    const { out, io } = capture();
    expect(await nbdCopyCommand(['nbd+unix:///x?socket=/nonexistent/s.sock', 'nbd+unix:///y?socket=/nonexistent/t.sock'], io)).toBe(1);
    expect(out.stderr).toMatch(/failed: cannot open SRC nbd\+unix:\/\/\/x\?socket=\/nonexistent\/s\.sock: could not connect to NBD server at \/nonexistent\/s\.sock/);
  });
});
