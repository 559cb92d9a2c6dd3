import { checkHubEndpoint, isLoopbackHost, normalizeFingerprint } from './hub-tls';

describe('the hub endpoint a client may send a token to', () => {
  const b64 = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';
  const hex = 'E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55';

  it('takes a fingerprint in its SHA256:<base64> form or as openssl prints it, and nothing else', () => {
    expect(normalizeFingerprint(b64)).toBe(b64);
    expect(normalizeFingerprint(`${b64}=`)).toBe(b64);
    expect(normalizeFingerprint(hex)).toBe(b64);
    expect(normalizeFingerprint(`sha256 Fingerprint=${hex}`)).toBe(b64);
    expect(normalizeFingerprint(hex.replace(/:/g, '').toLowerCase())).toBe(b64);
    expect(() => normalizeFingerprint('SHA256:short')).toThrow('is not a certificate fingerprint');
    expect(() => normalizeFingerprint(hex.slice(0, 59))).toThrow('is not a certificate fingerprint');
  });

  it('sends a token in clear only to this host: http:// beyond loopback is refused, so is a fingerprint on http://', () => {
    expect(checkHubEndpoint(new URL('https://hub.example:8082'), hex)).toBe(b64);
    expect(checkHubEndpoint(new URL('https://hub.example:8082'), null)).toBeNull();
    expect(checkHubEndpoint(new URL('http://127.0.0.1:8082'), null)).toBeNull();
    expect(checkHubEndpoint(new URL('http://[::1]:8082'), undefined)).toBeNull();
    expect(() => checkHubEndpoint(new URL('http://hub.example:8082'), null)).toThrow('refusing to send a token over plain HTTP to hub.example:8082: use https://hub.example:8082');
    expect(() => checkHubEndpoint(new URL('http://10.0.0.5:8082'), null)).toThrow('refusing to send a token over plain HTTP');
    expect(() => checkHubEndpoint(new URL('http://127.0.0.1:8082'), b64)).toThrow('which is not https://');
    expect(() => checkHubEndpoint(new URL('ftp://hub.example'), null)).toThrow('must be https://');
  });

  it('knows loopback names and addresses', () => {
    expect(['localhost', '127.0.0.1', '127.9.9.9', '[::1]', '::1', '::ffff:127.0.0.1'].map(isLoopbackHost)).toEqual([true, true, true, true, true, true]);
    expect(['0.0.0.0', '128.0.0.1', 'hub.example', '::', 'localhost.example'].map(isLoopbackHost)).toEqual([false, false, false, false, false]);
  });
});
