import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AuthenticationType, Client, ConnectConfig } from 'ssh2';
import { FakeAgentRegistry } from '../../test/fixtures/tunnel/agent-registry';
import { captureLog, waitFor, rawSshClient } from '../../test/fixtures/tunnel/tunnel-fixtures';
import { generateAgentKey } from './ssh-keys';
import { connectSyncTunnel, SyncTunnelOptions } from './sync-client';
import { TunnelClient } from './tunnel-client';
import { TunnelServer } from './tunnel-server';
import { HUB_API_DESTINATION } from './tunnel-session';

const SSH_PORT = 13040; // passwords on, apiPort set
const PLAIN_SSH_PORT = 13041; // keys only, as before this feature
const NO_API_SSH_PORT = 13042; // passwords on, no apiPort
const API_PORT = 13043;
const AGENT_API_PORT = 13044; // never called; the agent's reverse forward only needs a number

const GOOD_TOKEN = 'sd_sync_good-token-0123456789';
const RESTRICTED_TOKEN = 'sd_sync_restricted-token-9876543210';
const WRONG_TOKEN = 'sd_sync_wrong-token-5555555555';

describe('SSH tunnel: sync clients with a password', () => {
  let dir: string;
  let api: HttpServer;
  let hub: TunnelServer;
  let plainHub: TunnelServer;
  let noApiHub: TunnelServer;
  const hubLog = captureLog();
  const plainLog = captureLog();
  const noApiLog = captureLog();
  const events: string[] = [];
  const passwordChecks: Array<{ username: string }> = [];
  const directChecks: string[] = [];
  const registry = new FakeAgentRegistry();

  /** Stands in for the hub's API-token lookup. */
  const authorizePassword = async (username: string, password: string) => {
    passwordChecks.push({ username });
    if (password === GOOD_TOKEN) return { agentId: 'sync:hub-b' };
    if (password === RESTRICTED_TOKEN) return { agentId: 'sync:restricted' };
    return null;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-sync-tunnel-'));
    api = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ hub: 'hub-a', path: req.url, auth: req.headers.authorization ?? null }));
    });
    api.listen(API_PORT, '127.0.0.1');
    await once(api, 'listening');
    const agentKey = await generateAgentKey(join(dir, 'agent'));
    registry.register('agent-a', agentKey.publicKey);

    const hostKeyFile = join(dir, 'hub', 'ssh_host_ed25519_key');
    hub = new TunnelServer({
      hostKeyFile,
      port: SSH_PORT,
      bind: '127.0.0.1',
      authorize: registry.authorize,
      authorizePassword,
      apiPort: API_PORT,
      allowDirect: async (agentId, host, port) => {
        directChecks.push(`${agentId} ${host}:${port}`);
        return agentId === 'sync:hub-b' && port === API_PORT;
      },
      onConnected: (agentId) => void events.push(`connected ${agentId}`),
      onDisconnected: (agentId, reason) => void events.push(`disconnected ${agentId}: ${reason}`),
      maxAuthAttempts: 3,
      log: hubLog,
    });
    // Started one after the other: they share a host key file, which the first start creates.
    await hub.start();
    plainHub = new TunnelServer({ hostKeyFile, port: PLAIN_SSH_PORT, bind: '127.0.0.1', authorize: registry.authorize, allowDirect: async () => true, log: plainLog });
    await plainHub.start();
    noApiHub = new TunnelServer({ hostKeyFile, port: NO_API_SSH_PORT, bind: '127.0.0.1', authorize: registry.authorize, authorizePassword, allowDirect: async () => true, log: noApiLog });
    await noApiHub.start();
  });

  afterAll(async () => {
    await Promise.all([hub?.stop(), plainHub?.stop(), noApiHub?.stop()]);
    api?.closeAllConnections();
    await new Promise((resolve) => api?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    // Whatever a test did, no token ever reaches a log line.
    const logged = JSON.stringify([hubLog.lines, plainLog.lines, noApiLog.lines]);
    for (const token of [GOOD_TOKEN, RESTRICTED_TOKEN, WRONG_TOKEN]) expect(logged).not.toContain(token);
  });

  function options(overrides: Partial<SyncTunnelOptions> = {}): SyncTunnelOptions {
    return { host: '127.0.0.1', port: SSH_PORT, password: GOOD_TOKEN, hostKeyFingerprint: hub.hostKeyFingerprint!, readyTimeoutMs: 5_000, ...overrides };
  }

  /** A bare ssh2 client authenticated with a password, for channel requests the sync client never makes. */
  const rawClient = (config: Partial<ConnectConfig>) => rawSshClient(SSH_PORT, { username: 'sendense-sync', ...config });


  function readAll(stream: Duplex, request: string): Promise<string> {
    return new Promise((resolve, reject) => {
      let text = '';
      stream.on('data', (data: Buffer) => (text += data.toString()));
      stream.on('end', () => resolve(text));
      stream.on('error', reject);
      stream.write(request);
    });
  }

  it('accepts the token as a password and reaches the hub API by name, as a stream and as a local port', async () => {
    const tunnel = await connectSyncTunnel(options());
    try {
      expect(events).toContain('connected sync:hub-b');
      expect(hub.session('sync:hub-b')?.fingerprint).toBe('password');
      expect(passwordChecks.at(-1)).toEqual({ username: 'sendense-sync' });

      const channel = await tunnel.openApi();
      expect(await readAll(channel, 'GET /v1/raw HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*"path":"\/v1\/raw"/);
      // The policy saw the API's real port, not the 0 the client sent with the name.
      expect(directChecks).toContain(`sync:hub-b 127.0.0.1:${API_PORT}`);

      const forward = await tunnel.forwardApi();
      const res = await fetch(`http://127.0.0.1:${forward.port}/v1/sites?x=1`, { headers: { authorization: 'Bearer inner' } });
      expect(await res.json()).toEqual({ hub: 'hub-a', path: '/v1/sites?x=1', auth: 'Bearer inner' });
    } finally {
      await tunnel.close();
    }
    expect(await tunnel.closed).toBe('closed by this side');
    await waitFor(() => events.some((e) => e.startsWith('disconnected sync:hub-b')), 2_000, 'hub saw the sync client leave');
    await expect(tunnel.openApi()).rejects.toThrow(/closed/);
  });

  it('reports a connection the hub ends, and closes its local ports with it', async () => {
    const tunnel = await connectSyncTunnel(options());
    const forward = await tunnel.forwardApi();
    hub.session('sync:hub-b')!.close('operator revoked the token');
    expect(await tunnel.closed).toBe('connection closed');
    await expect(fetch(`http://127.0.0.1:${forward.port}/v1/sites`)).rejects.toThrow();
  });

  it('refuses a wrong password, with a message saying so', async () => {
    const checks = passwordChecks.length;
    await expect(connectSyncTunnel(options({ password: WRONG_TOKEN }))).rejects.toThrow(/authentication refused: hub 127\.0\.0\.1:13040 rejected the password for sendense-sync/);
    expect(passwordChecks.length).toBe(checks + 1); // one attempt: the client tries nothing else
    expect(hubLog.find(/password refused/)?.fields).toEqual({ remote: expect.any(String), user: 'sendense-sync' });
  });

  it('offers passwords next to public keys, and keeps accepting agent keys', async () => {
    let offered: AuthenticationType[] | undefined;
    const client = new Client();
    const failed = new Promise<Error>((resolve) => client.once('error', resolve));
    client.connect({
      host: '127.0.0.1',
      port: SSH_PORT,
      username: 'x',
      hostVerifier: () => true,
      // ssh2 reads the return value: 'none' first (methodsLeft is null then), false to give up once the list is known.
      authHandler: (methodsLeft) => {
        if (!methodsLeft) return 'none';
        offered = methodsLeft;
        return false;
      },
    });
    expect((await failed).message).toMatch(/authentication methods failed/);
    expect(offered).toEqual(['publickey', 'password']);

    const agent = new TunnelClient({ host: '127.0.0.1', port: SSH_PORT, privateKeyFile: join(dir, 'agent', 'id_ed25519'), hostKeyFingerprint: hub.hostKeyFingerprint, localApiPort: AGENT_API_PORT });
    agent.start();
    try {
      await agent.waitConnected(5_000);
      expect(hub.session('agent-a')?.fingerprint).toMatch(/^SHA256:/);
    } finally {
      await agent.stop();
    }
  });

  it('counts failed passwords toward maxAuthAttempts', async () => {
    const checks = passwordChecks.length;
    const client = new Client();
    let authenticated = false;
    client.once('ready', () => (authenticated = true));
    client.on('error', () => undefined);
    const closed = once(client, 'close');
    const attempt = { type: 'password' as const, username: 'sendense-sync', password: WRONG_TOKEN };
    client.connect({ host: '127.0.0.1', port: SSH_PORT, username: 'sendense-sync', hostVerifier: () => true, authHandler: [attempt, attempt, attempt, attempt, attempt, { ...attempt, password: GOOD_TOKEN }] });
    await closed;
    expect(authenticated).toBe(false);
    expect(passwordChecks.length - checks).toBe(3); // maxAuthAttempts, then the hub hangs up
  });

  it('refuses a hub whose host key is not the pinned one, before sending the token', async () => {
    const checks = passwordChecks.length;
    const pinned = `SHA256:${'A'.repeat(43)}`;
    const failure = connectSyncTunnel(options({ hostKeyFingerprint: pinned }));
    await expect(failure).rejects.toThrow(`hub host key ${hub.hostKeyFingerprint} does not match the pinned ${pinned}`);
    expect(passwordChecks.length).toBe(checks);
  });

  it('is refused by a hub that takes no passwords, which logs the attempt', async () => {
    await expect(connectSyncTunnel(options({ port: PLAIN_SSH_PORT }))).rejects.toThrow(/authentication refused: hub 127\.0\.0\.1:13041 does not accept password authentication \(it offers publickey\)/);
    expect(plainLog.find(/authentication method refused: public keys only/)?.fields).toMatchObject({ method: 'password', user: 'sendense-sync' });
  });

  it('refuses the API name on a hub that has no apiPort configured', async () => {
    const tunnel = await connectSyncTunnel(options({ port: NO_API_SSH_PORT }));
    try {
      await expect(tunnel.openApi()).rejects.toThrow(/hub refused a channel to its API/);
      expect(noApiLog.find(/no hub API port configured/)?.fields).toEqual({ agentId: 'sync:hub-b', host: HUB_API_DESTINATION, port: 0 });
    } finally {
      await tunnel.close();
    }
  });

  it('refuses the API when allowDirect says no for its port', async () => {
    const tunnel = await connectSyncTunnel(options({ password: RESTRICTED_TOKEN }));
    try {
      await expect(tunnel.openApi()).rejects.toThrow(/hub refused a channel to its API/);
      expect(hubLog.find(/port not allowed/)?.fields).toEqual({ agentId: 'sync:restricted', host: HUB_API_DESTINATION, port: 0, apiPort: API_PORT });
      expect(directChecks).toContain(`sync:restricted 127.0.0.1:${API_PORT}`);
      // The local port exists, but each connection to it ends at once.
      const forward = await tunnel.forwardApi();
      await expect(fetch(`http://127.0.0.1:${forward.port}/v1/sites`)).rejects.toThrow();
    } finally {
      await tunnel.close();
    }
  });

  it('still refuses any other destination off the hub loopback', async () => {
    const client = await rawClient({ password: GOOD_TOKEN });
    try {
      const open = (host: string, port: number) => new Promise<Duplex>((resolve, reject) => client.forwardOut('127.0.0.1', 0, host, port, (err, ch) => (err ? reject(err) : resolve(ch))));
      for (const host of ['10.1.2.3', 'sendense-api.example.com', 'SENDENSE-API']) {
        await expect(open(host, API_PORT)).rejects.toThrow();
        expect(hubLog.lines.filter((line) => /not the hub loopback/.test(line.message)).map((line) => line.fields)).toContainEqual({ agentId: 'sync:hub-b', host, port: API_PORT });
      }
      // The name leads to the API whatever port comes with it.
      const channel = await open(HUB_API_DESTINATION, 443);
      expect(await readAll(channel, 'GET /any-port HTTP/1.0\r\n\r\n')).toMatch(/"path":"\/any-port"/);
    } finally {
      client.end();
    }
  });

  it('gives a peer hub no reverse forward: it serves no API to this hub', async () => {
    const client = await rawClient({ password: GOOD_TOKEN });
    try {
      await expect(new Promise<number>((resolve, reject) => client.forwardIn('127.0.0.1', 0, (err, port) => (err ? reject(err) : resolve(port))))).rejects.toThrow();
      expect(hubLog.lines.filter((line) => /global request refused/.test(line.message)).map((line) => line.fields)).toContainEqual({ agentId: 'sync:hub-b', request: 'tcpip-forward', bindAddr: '127.0.0.1', bindPort: 0 });
    } finally {
      client.end();
    }
  });
});
