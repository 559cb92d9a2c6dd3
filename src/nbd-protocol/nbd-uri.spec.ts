import { formatNbdUri, NbdUriError, parseNbdUri } from './nbd-uri';

describe('parseNbdUri', () => {
  it.each([
    ['nbd://127.0.0.1:11000/disk', { transport: 'tcp', host: '127.0.0.1', port: 11000, exportName: 'disk' }],
    ['nbd://example.com/disk', { transport: 'tcp', host: 'example.com', port: 10809, exportName: 'disk' }],
    ['nbd://example.com', { transport: 'tcp', host: 'example.com', port: 10809, exportName: '' }],
    ['nbd://example.com/', { transport: 'tcp', host: 'example.com', port: 10809, exportName: '' }],
    ['nbd://h:1//abs/name', { transport: 'tcp', host: 'h', port: 1, exportName: '/abs/name' }],
    ['nbd://h/with%20space%2Fslash', { transport: 'tcp', host: 'h', port: 10809, exportName: 'with space/slash' }],
    ['nbd://[::1]:11001/x', { transport: 'tcp', host: '::1', port: 11001, exportName: 'x' }],
    ['nbd://[fe80::1%25eth0]/x', { transport: 'tcp', host: 'fe80::1%eth0', port: 10809, exportName: 'x' }],
    ['NBD://H:65535/x', { transport: 'tcp', host: 'H', port: 65535, exportName: 'x' }],
    ['nbd+unix:///disk?socket=/run/q.sock', { transport: 'unix', socketPath: '/run/q.sock', exportName: 'disk' }],
    ['nbd+unix:///?socket=/tmp/a%20b.sock', { transport: 'unix', socketPath: '/tmp/a b.sock', exportName: '' }],
    ['nbd+unix://?socket=rel.sock', { transport: 'unix', socketPath: 'rel.sock', exportName: '' }],
  ])('%s', (uri, expected) => {
    expect(parseNbdUri(uri)).toEqual(expected);
  });

  it.each([
    ['nbd:/host/x', /expected nbd:\/\//],
    ['http://h/x', /unknown scheme http/],
    ['nbds://h/x', /TLS/],
    ['nbds+unix:///x?socket=/s', /TLS/],
    ['nbd:///x', /host is required/],
    ['nbd://h:0/x', /out of range/],
    ['nbd://h:65536/x', /out of range/],
    ['nbd://h:abc/x', /invalid port/],
    ['nbd://h:/x', /invalid port/],
    ['nbd://::1/x', /brackets/],
    ['nbd://[::1/x', /unterminated/],
    ['nbd://[::1]x/y', /after the IPv6 host/],
    ['nbd://user@h/x', /user information/],
    ['nbd://h/x?socket=/s', /unsupported query parameter socket/],
    ['nbd://h/x#frag', /fragments/],
    ['nbd://h/%zz', /malformed %-escape/],
    ['nbd+unix:///x', /needs \?socket=PATH/],
    ['nbd+unix:///x?socket=', /needs \?socket=PATH/],
    ['nbd+unix://host/x?socket=/s', /takes no host/],
    ['nbd+unix:///x?socket=/s&tls=on', /unsupported query parameter tls/],
    ['nbd+unix:///x?socket=/a&socket=/b', /given twice/],
    ['nbd+vsock://1/x', /not supported/],
  ])('rejects %s', (uri, message) => {
    expect(() => parseNbdUri(uri)).toThrow(NbdUriError);
    expect(() => parseNbdUri(uri)).toThrow(message);
  });

  it('round-trips through formatNbdUri', () => {
    for (const uri of ['nbd://127.0.0.1:11000/disk', 'nbd://[fe80::1%25eth0]:1/x', 'nbd://[::1]:10809/a%20b', 'nbd+unix:///exp?socket=/tmp/x.sock']) {
      expect(parseNbdUri(formatNbdUri(parseNbdUri(uri)))).toEqual(parseNbdUri(uri));
    }
  });
});
