import { decodeWaitStatus, parseListeningInodes, parseListeningUnixInodes, parseProcStat } from './proc';

describe('parseProcStat', () => {
  it('counts fields from the last parenthesis, so odd command names do not shift them', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = 'Z';
    fields[19] = '84948'; // starttime, field 22
    fields[49] = '9'; // exit_code, field 52
    expect(parseProcStat(`1234 (qemu) nbd (x)) ${fields.join(' ')}\n`)).toEqual({ state: 'Z', startTime: '84948', exitStatus: 9 });
  });
});

describe('decodeWaitStatus', () => {
  it('decodes an exit code', () => expect(decodeWaitStatus(3 << 8)).toEqual({ code: 3, signal: null }));
  it('decodes a signal', () => expect(decodeWaitStatus(9)).toEqual({ code: null, signal: 'SIGKILL' }));
  it('decodes a signal with a core dump', () => expect(decodeWaitStatus(0x80 | 6)).toEqual({ code: null, signal: 'SIGABRT' }));
});

describe('parseListeningInodes', () => {
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:2A9C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4093 1 00000000ced118c5 100 0 0 10 0',
    '   1: 0100007F:2A9C 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 5001 1 00000000ced118c5 20 4 30 10 -1',
    '   2: 0100007F:2A9D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4094 1 00000000ced118c5 100 0 0 10 0',
    '',
  ].join('\n');

  it('finds the LISTEN socket on the port and ignores established connections and other ports', () => {
    expect([...parseListeningInodes(table, 0x2a9c)]).toEqual(['4093']);
  });

  it('finds nothing on a port nobody listens on', () => {
    expect(parseListeningInodes(table, 10999).size).toBe(0);
  });
});

describe('parseListeningUnixInodes', () => {
  it('finds listening sockets bound to the path, not connected ones or other paths', () => {
    const table = [
      'Num       RefCount Protocol Flags    Type St Inode Path',
      '000000005bb791ae: 00000002 00000000 00010000 0001 01  4641 /w/qemu-nbd.sock',
      '00000000a667f7e0: 00000003 00000000 00000000 0001 03  1072 /w/qemu-nbd.sock',
      '00000000a667f7e1: 00000002 00000000 00010000 0001 01  5000 /w/my restore.sock',
      '00000000a667f7e2: 00000002 00000000 00010000 0001 01  5001 /w/other.sock',
    ].join('\n');
    expect([...parseListeningUnixInodes(table, '/w/qemu-nbd.sock')]).toEqual(['4641']);
    expect([...parseListeningUnixInodes(table, '/w/my restore.sock')]).toEqual(['5000']);
  });
});
