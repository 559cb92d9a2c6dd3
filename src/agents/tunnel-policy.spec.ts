import { mayOpenDirect } from './tunnel-policy';

const API = 8443;

describe('tunnel policy: which direct channels an agent may open', () => {
  it('lets an agent reach the hub API on the loopback', () => {
    expect(mayOpenDirect({ host: '127.0.0.1', port: API }, API)).toBe(true);
    expect(mayOpenDirect({ host: 'localhost', port: API }, API)).toBe(true);
  });

  it('refuses every other port of the loopback: NBD exports are reached over TLS with their own key, not through the tunnel', () => {
    expect(mayOpenDirect({ host: '127.0.0.1', port: 10100 }, API)).toBe(false);
    expect(mayOpenDirect({ host: 'localhost', port: 5432 }, API)).toBe(false);
  });

  it('refuses any host but the hub loopback, even for the API port', () => {
    expect(mayOpenDirect({ host: '10.1.2.3', port: API }, API)).toBe(false);
    expect(mayOpenDirect({ host: '0.0.0.0', port: API }, API)).toBe(false);
    expect(mayOpenDirect({ host: '127.0.0.2', port: API }, API)).toBe(false);
  });
});
