import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, Server as HttpServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { ConnectConfig, PublicKeyAuthMethod, utils } from 'ssh2';
import { FakeAgentRegistry } from '../../test/fixtures/tunnel/agent-registry';
import { captureLog, startEchoServer, startSinkServer, TestServer, waitFor, rawSshClient } from '../../test/fixtures/tunnel/tunnel-fixtures';
import { generateAgentKey, SshKeyPair } from './ssh-keys';
import { TunnelClient } from './tunnel-client';
import { TunnelServer } from './tunnel-server';
import { TunnelSession } from './tunnel-session';

const SSH_PORT = 13000;
const ECHO_PORT = 13001;
const SINK_PORT = 13002;
const SILENT_PORT = 13003; // allowed, but nothing listens there
const FORBIDDEN_ECHO_PORT = 13004; // something listens, but the agent may not use it
const AGENT_API_PORT = 13005;

describe('SSH tunnel: channels and policy', () => {
  let dir: string;
  let agentKey: SshKeyPair;
  let rawKey: SshKeyPair;
  let strangerKey: SshKeyPair;
  const registry = new FakeAgentRegistry();
  const hubLog = captureLog();
  const agentLog = captureLog();
  const events: string[] = [];
  const sessions = new Map<string, TunnelSession>();
  let hub: TunnelServer;
  let agent: TunnelClient;
  let agentApi: HttpServer;
  const servers: TestServer[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-tunnel-'));
    [agentKey, rawKey, strangerKey] = await Promise.all([generateAgentKey(join(dir, 'agent-a')), generateAgentKey(join(dir, 'agent-raw')), generateAgentKey(join(dir, 'stranger'))]);
    registry.register('agent-a', agentKey.publicKey);
    registry.register('agent-raw', rawKey.publicKey);
    for (const port of [ECHO_PORT, SINK_PORT, SILENT_PORT]) registry.allow('agent-a', port);
    registry.allow('agent-raw', ECHO_PORT);
    servers.push(await startEchoServer(ECHO_PORT), await startSinkServer(SINK_PORT), await startEchoServer(FORBIDDEN_ECHO_PORT));
    agentApi = createServer((req, res) => res.end(JSON.stringify({ agent: 'agent-a', path: req.url })));
    agentApi.listen(AGENT_API_PORT, '127.0.0.1');
    await once(agentApi, 'listening');

    hub = new TunnelServer({
      hostKeyFile: join(dir, 'hub', 'ssh_host_ed25519_key'),
      port: SSH_PORT,
      bind: '127.0.0.1',
      authorize: registry.authorize,
      allowDirect: registry.allowDirect,
      onConnected: (agentId, session) => {
        events.push(`connected ${agentId}`);
        sessions.set(agentId, session);
      },
      onDisconnected: (agentId, reason) => void events.push(`disconnected ${agentId}: ${reason}`),
      log: hubLog,
    });
    await hub.start();
    agent = new TunnelClient({ host: '127.0.0.1', port: SSH_PORT, privateKeyFile: agentKey.privateKeyPath, hostKeyFingerprint: hub.hostKeyFingerprint, localApiPort: AGENT_API_PORT, log: agentLog, reconnect: { initialMs: 100 } });
    agent.start();
    await agent.waitConnected(5_000);
  });

  afterAll(async () => {
    await agent?.stop();
    await hub?.stop();
    agentApi?.closeAllConnections();
    await new Promise((resolve) => agentApi?.close(resolve));
    await Promise.all(servers.map((server) => server.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** A bare ssh2 client, for what TunnelClient would never do (passwords, shells, foreign hosts). */
  const rawClient = (config: Partial<ConnectConfig>) => rawSshClient(SSH_PORT, { username: 'sendense-agent', ...config });


  function roundTrip(stream: Duplex, payload: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let length = 0;
      stream.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        length += chunk.length;
        if (length >= payload.length) resolve(Buffer.concat(chunks));
      });
      stream.on('error', reject);
      stream.write(payload);
    });
  }

  function readAll(stream: Duplex, request: string, halfClose: boolean): Promise<string> {
    return new Promise((resolve, reject) => {
      let text = '';
      stream.on('data', (data: Buffer) => (text += data.toString()));
      stream.on('end', () => resolve(text));
      stream.on('error', reject);
      if (halfClose) stream.end(request);
      else stream.write(request);
    });
  }

  it('authenticates the registered agent key and reports the session', () => {
    expect(agent.connected).toBe(true);
    expect(events).toContain('connected agent-a');
    const session = hub.session('agent-a')!;
    expect(session).toBe(sessions.get('agent-a'));
    expect(session.fingerprint).toBe(agentKey.fingerprint);
  });

  it('opens a direct channel to an allowed hub port and moves bytes both ways', async () => {
    const channel = await agent.openDirect(ECHO_PORT);
    expect((await roundTrip(channel, Buffer.from('hello hub'))).toString()).toBe('hello hub');
    channel.destroy();
  });

  it('carries 64 MiB through an echo intact, and 128 MiB one way to a sink (the NBD write direction)', async () => {
    const payload = randomBytes(64 * 1024 * 1024);
    const echo = await agent.openDirect(ECHO_PORT);
    const back = await roundTrip(echo, payload);
    echo.destroy();
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));

    const total = 128 * 1024 * 1024;
    const sink = await agent.openDirect(SINK_PORT);
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(total));
    const acknowledged = new Promise<string>((resolve) => sink.once('data', (data: Buffer) => resolve(data.toString())));
    sink.write(header);
    const chunk = payload.subarray(0, 4 * 1024 * 1024);
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!sink.write(chunk)) await once(sink, 'drain');
    }
    expect(await acknowledged).toBe('ok');
    sink.destroy();
  });

  it('refuses and logs a channel to a port the agent is not allowed to use', async () => {
    await expect(agent.openDirect(FORBIDDEN_ECHO_PORT)).rejects.toThrow(/refused a channel to its port 13004/);
    const line = hubLog.find(/direct-tcpip refused: port not allowed/);
    expect(line?.fields).toEqual({ agentId: 'agent-a', host: '127.0.0.1', port: FORBIDDEN_ECHO_PORT });
    expect(agent.connected).toBe(true); // a refusal costs the channel, not the connection
  });

  it('fails an allowed channel when nothing listens on the port', async () => {
    await expect(agent.openDirect(SILENT_PORT)).rejects.toThrow(/13003/);
    expect(hubLog.find(/nothing answers on that port/)?.fields).toMatchObject({ agentId: 'agent-a', port: SILENT_PORT });
  });

  it('refuses channels to anything but the hub loopback, and refuses shells and exec', async () => {
    const client = await rawClient({ privateKey: readFileSync(rawKey.privateKeyPath) });
    try {
      const open = (host: string, port: number) => new Promise<Duplex>((resolve, reject) => client.forwardOut('127.0.0.1', 0, host, port, (err, ch) => (err ? reject(err) : resolve(ch))));
      await expect(open('10.1.2.3', ECHO_PORT)).rejects.toThrow();
      expect(hubLog.find(/not the hub loopback/)?.fields).toEqual({ agentId: 'agent-raw', host: '10.1.2.3', port: ECHO_PORT });
      await expect(open('127.0.0.1', SINK_PORT)).rejects.toThrow(); // allowed for agent-a, not for this agent
      const allowed = await open('localhost', ECHO_PORT);
      expect((await roundTrip(allowed, Buffer.from('x'))).toString()).toBe('x');
      allowed.destroy();
      await expect(new Promise((resolve, reject) => client.exec('id', (err, ch) => (err ? reject(err) : resolve(ch))))).rejects.toThrow();
      await expect(new Promise((resolve, reject) => client.shell((err, ch) => (err ? reject(err) : resolve(ch))))).rejects.toThrow();
      await expect(new Promise((resolve, reject) => client.sftp((err, ch) => (err ? reject(err) : resolve(ch))))).rejects.toThrow();
      expect(hubLog.lines.filter((line) => /session channel refused/.test(line.message))).toHaveLength(3);
      // A reverse forward on a port of the agent's choosing would let it squat hub ports.
      await expect(new Promise((resolve, reject) => client.forwardIn('127.0.0.1', 13099, (err, port) => (err ? reject(err) : resolve(port))))).rejects.toThrow();
    } finally {
      client.end();
    }
  });

  it('refuses an unregistered key at authentication', async () => {
    await expect(rawClient({ privateKey: readFileSync(strangerKey.privateKeyPath) })).rejects.toMatchObject({ level: 'client-authentication' });
    expect(hubLog.find(/unknown public key refused/)?.fields).toMatchObject({ fingerprint: strangerKey.fingerprint });
  });

  it('refuses a registered public key whose signature is forged', async () => {
    const key = utils.parseKey(readFileSync(rawKey.privateKeyPath));
    if (key instanceof Error) throw key;
    key.sign = () => randomBytes(64); // offers the right public key, but cannot prove it holds the private one
    const forged: PublicKeyAuthMethod = { type: 'publickey', username: 'sendense-agent', key };
    await expect(rawClient({ authHandler: [forged] })).rejects.toMatchObject({ level: 'client-authentication' });
    expect(hubLog.find(/bad signature/)?.fields).toMatchObject({ agentId: 'agent-raw', fingerprint: rawKey.fingerprint });
  });

  it('refuses passwords and keyboard-interactive', async () => {
    await expect(rawClient({ password: 'hunter2', tryKeyboard: true })).rejects.toMatchObject({ level: 'client-authentication' });
    const methods = hubLog.lines.filter((line) => /public keys only/.test(line.message)).map((line) => line.fields.method);
    expect(methods).toEqual(expect.arrayContaining(['password', 'keyboard-interactive']));
  });

  it('lets the hub call the agent API through the reverse forward', async () => {
    const session = hub.session('agent-a')!;
    const url = await session.waitForAgentApi();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${url}/v1/vms`);
    expect(await res.json()).toEqual({ agent: 'agent-a', path: '/v1/vms' });

    // A raw channel: ending it would close it (ssh2 server channels send CLOSE with EOF), so HTTP/1.0 ends the exchange instead.
    const channel = await session.openAgentApi();
    expect(await readAll(channel, 'GET /raw HTTP/1.0\r\n\r\n', false)).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*"path":"\/raw"/);

    // A client that half-closes after its request still gets the answer through the hub's listener.
    const socket = connect({ host: '127.0.0.1', port: Number(new URL(url).port) });
    expect(await readAll(socket, 'GET /half-closed HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n', true)).toMatch(/"path":"\/half-closed"/);
  });

  it('offers a plain local port that leads to a hub port', async () => {
    const forward = await agent.forwardLocal(ECHO_PORT);
    const socket = connect({ host: '127.0.0.1', port: forward.port });
    expect((await roundTrip(socket, Buffer.from('via local port'))).toString()).toBe('via local port');
    socket.destroy();
    await forward.close();
  });

  it('replaces the session when the same agent connects again', async () => {
    events.length = 0;
    const old = hub.session('agent-a')!;
    const second = new TunnelClient({ host: '127.0.0.1', port: SSH_PORT, privateKeyFile: agentKey.privateKeyPath, hostKeyFingerprint: hub.hostKeyFingerprint, localApiPort: AGENT_API_PORT });
    second.start();
    try {
      await second.waitConnected(5_000);
      expect(events.slice(0, 2)).toEqual(['disconnected agent-a: replaced by a new connection from the same agent', 'connected agent-a']);
      expect(old.closed).toBe(true);
      expect(hub.session('agent-a')).not.toBe(old);
    } finally {
      await second.stop();
    }
    await agent.waitConnected(5_000); // the first one takes over again once the second has left
    await waitFor(() => hub.session('agent-a') !== undefined, 2_000, 'agent-a back');
  });
});
