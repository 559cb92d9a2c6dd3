import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HubClient } from './hub-client';

/** A hub that takes requests and never answers: what an agent met when a tunnel channel was never opened. */
describe('HubClient', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer(() => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('gives up on a call the hub never answers, after its time limit', async () => {
    const hub = new HubClient({ url: new URL('http://127.0.0.1:8082') }, () => port, 'token', 200);
    const started = Date.now();
    await expect(hub.send('POST', '/api/v1/restores/r1/agent-reports', { type: 'finished' })).rejects.toThrow();
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(5_000);
    // binary calls get ten times as long
    const put = Date.now();
    await expect(hub.put('/api/v1/backups/j1/disks/d1/digests', Buffer.alloc(10))).rejects.toThrow();
    expect(Date.now() - put).toBeGreaterThanOrEqual(1_900);
  });
});
