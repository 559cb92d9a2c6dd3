import { mayOpenDirect } from './tunnel-policy';

const API = 8443;
const own = { apiPort: API, grantedLease: 'lease-a', currentLease: 'lease-a' };

describe('tunnel policy: which direct channels an agent may open', () => {
  it('lets an agent reach the hub API and its own job NBD port on the loopback', () => {
    expect(mayOpenDirect({ host: '127.0.0.1', port: API }, { apiPort: API, grantedLease: undefined, currentLease: undefined })).toBe(true);
    expect(mayOpenDirect({ host: '127.0.0.1', port: 10100 }, own)).toBe(true);
    expect(mayOpenDirect({ host: 'localhost', port: 10100 }, own)).toBe(true);
  });

  it('refuses a port granted to nobody, even while another job leases it', () => {
    expect(mayOpenDirect({ host: '127.0.0.1', port: 10101 }, { apiPort: API, grantedLease: undefined, currentLease: 'lease-b' })).toBe(false);
  });

  it('refuses a port nobody leases any more, grant or not', () => {
    expect(mayOpenDirect({ host: '127.0.0.1', port: 10100 }, { apiPort: API, grantedLease: 'lease-a', currentLease: undefined })).toBe(false);
  });

  it('refuses a granted port now leased to another job', () => {
    expect(mayOpenDirect({ host: '127.0.0.1', port: 10100 }, { apiPort: API, grantedLease: 'lease-a', currentLease: 'lease-c' })).toBe(false);
  });

  it('refuses any host but the hub loopback, even for the API port', () => {
    expect(mayOpenDirect({ host: '10.1.2.3', port: 10100 }, own)).toBe(false);
    expect(mayOpenDirect({ host: '0.0.0.0', port: API }, own)).toBe(false);
    expect(mayOpenDirect({ host: '127.0.0.2', port: 10100 }, own)).toBe(false);
  });
});
