import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeAgentRegistry } from '../../test/fixtures/tunnel/agent-registry';
import { captureLog, startEchoServer, startFreezableRelay, TestServer, waitFor } from '../../test/fixtures/tunnel/tunnel-fixtures';
import { generateAgentKey, SshKeyPair } from './ssh-keys';
import { TunnelClient, TunnelClientOptions } from './tunnel-client';
import { TunnelServer, TunnelServerOptions } from './tunnel-server';

const RESTART_PORT = 13020;
const FROZEN_HUB_PORT = 13021;
const FROZEN_RELAY_PORT = 13022;
const STOPPED_CHILD_PORT = 13023;
const PIN_PORT = 13024;
const TOFU_PORT = 13025;
const ECHO_PORT = 13026;
const AGENT_API_PORT = 13027; // never called here; the reverse forward only needs a number

const KEEPALIVE_MS = 250;
const KEEPALIVE_COUNT = 2;
/** The promise made to operators: a silent peer is dropped after interval * (count + 1)... */
const DEAD_AFTER_MS = KEEPALIVE_MS * (KEEPALIVE_COUNT + 1);
/** ...give or take one timer period and a loaded CI machine. */
const DETECTION_BOUND_MS = DEAD_AFTER_MS + KEEPALIVE_MS + 750;

describe('SSH tunnel: reconnects, dead peers, host keys', () => {
  let dir: string;
  let agentKey: SshKeyPair;
  let echo: TestServer;
  const registry = new FakeAgentRegistry();
  const cleanups: Array<() => Promise<unknown> | void> = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-tunnel-resilience-'));
    agentKey = await generateAgentKey(join(dir, 'agent'));
    registry.register('agent-1', agentKey.publicKey);
    registry.allow('agent-1', ECHO_PORT);
    echo = await startEchoServer(ECHO_PORT);
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  afterAll(async () => {
    await echo?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function hubEvents() {
    const events: Array<{ at: number; what: string }> = [];
    return {
      events,
      onConnected: (agentId: string) => void events.push({ at: Date.now(), what: `connected ${agentId}` }),
      onDisconnected: (agentId: string, reason: string) => void events.push({ at: Date.now(), what: `disconnected ${agentId}: ${reason}` }),
    };
  }

  async function startHub(options: Partial<TunnelServerOptions> & { port: number }): Promise<TunnelServer> {
    const hub = new TunnelServer({
      hostKeyFile: join(dir, 'hub', 'host_key'),
      bind: '127.0.0.1',
      authorize: registry.authorize,
      allowDirect: registry.allowDirect,
      keepaliveIntervalMs: KEEPALIVE_MS,
      keepaliveCountMax: KEEPALIVE_COUNT,
      ...options,
    });
    await hub.start();
    cleanups.push(() => hub.stop());
    return hub;
  }

  function startAgent(options: Partial<TunnelClientOptions> & { port: number }): TunnelClient {
    const agent = new TunnelClient({
      host: '127.0.0.1',
      privateKeyFile: agentKey.privateKeyPath,
      localApiPort: AGENT_API_PORT,
      keepaliveIntervalMs: KEEPALIVE_MS,
      keepaliveCountMax: KEEPALIVE_COUNT,
      reconnect: { initialMs: 100, maxMs: 1_000 },
      ...options,
    });
    agent.start();
    cleanups.push(() => agent.stop());
    return agent;
  }

  async function echoThrough(agent: TunnelClient, text: string): Promise<string> {
    const channel = await agent.openDirect(ECHO_PORT);
    channel.write(text);
    const [data] = (await once(channel, 'data')) as [Buffer];
    channel.destroy();
    return data.toString();
  }

  it('reconnects by itself after the hub restarts with the same host key', async () => {
    const seen = hubEvents();
    const hub = await startHub({ port: RESTART_PORT, ...seen });
    const agent = startAgent({ port: RESTART_PORT, hostKeyFingerprint: hub.hostKeyFingerprint });
    await agent.waitConnected(5_000);
    const agentSide: string[] = [];
    agent.on('disconnected', (reason) => agentSide.push(`disconnected: ${reason}`));
    agent.on('connected', () => agentSide.push('connected'));

    await hub.stop();
    await waitFor(() => !agent.connected, 2_000, 'agent notices the hub went away');
    expect(seen.events.map((e) => e.what)).toEqual(['connected agent-1', 'disconnected agent-1: hub tunnel server stopping']);
    await new Promise((resolve) => setTimeout(resolve, 500)); // a few refused dials while the hub is down

    const restarted = await startHub({ port: RESTART_PORT, ...seen });
    expect(restarted.hostKeyFingerprint).toBe(hub.hostKeyFingerprint);
    const restartedAt = Date.now();
    await agent.waitConnected(5_000);
    expect(Date.now() - restartedAt).toBeLessThan(3_000);
    await waitFor(() => seen.events.length === 3, 2_000, 'onConnected after the restart');
    expect(seen.events[2].what).toBe('connected agent-1');
    expect(agentSide).toEqual([expect.stringMatching(/^disconnected: /), 'connected']);
    expect(await echoThrough(agent, 'after restart')).toBe('after restart');
  });

  it('drops an agent whose process is frozen (SIGSTOP) within the keepalive bound', async () => {
    const seen = hubEvents();
    await startHub({ port: STOPPED_CHILD_PORT, ...seen });
    const child: ChildProcess = spawn(process.execPath, [join(__dirname, '../../test/fixtures/tunnel/stalling-agent.js'), '127.0.0.1', String(STOPPED_CHILD_PORT), agentKey.privateKeyPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(child, 'exit');
    cleanups.push(async () => {
      child.kill('SIGKILL'); // also ends a stopped process
      await exited;
    });
    let output = '';
    child.stdout!.on('data', (data) => (output += data));
    child.stderr!.on('data', (data) => (output += data));
    await waitFor(() => output.includes('ready'), 5_000, `child agent ready (output: ${output})`);
    await waitFor(() => seen.events.length === 1, 1_000, 'onConnected');

    child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await waitFor(() => seen.events.length === 2, DETECTION_BOUND_MS + 1_000, 'onDisconnected');
    const detectedAfter = seen.events[1].at - stoppedAt;
    expect(seen.events[1].what).toBe('disconnected agent-1: Keepalive timeout');
    expect(detectedAfter).toBeGreaterThanOrEqual(DEAD_AFTER_MS - KEEPALIVE_MS);
    expect(detectedAfter).toBeLessThan(DETECTION_BOUND_MS);
  });

  it('notices a silently dead link on both ends and reconnects once the network is back', async () => {
    const seen = hubEvents();
    const hub = await startHub({ port: FROZEN_HUB_PORT, ...seen });
    const relay = await startFreezableRelay(FROZEN_RELAY_PORT, FROZEN_HUB_PORT);
    cleanups.push(() => relay.close());
    const agent = startAgent({ port: FROZEN_RELAY_PORT, hostKeyFingerprint: hub.hostKeyFingerprint });
    await agent.waitConnected(5_000);
    let agentLostAt = 0;
    agent.once('disconnected', () => (agentLostAt = Date.now()));

    relay.freeze();
    const frozenAt = Date.now();
    await waitFor(() => seen.events.length === 2 && agentLostAt > 0, DETECTION_BOUND_MS + 1_000, 'both ends notice');
    expect(seen.events[1].what).toBe('disconnected agent-1: Keepalive timeout');
    expect(seen.events[1].at - frozenAt).toBeLessThan(DETECTION_BOUND_MS);
    expect(agentLostAt - frozenAt).toBeLessThan(DETECTION_BOUND_MS);

    relay.thaw();
    await agent.waitConnected(5_000);
    expect(await echoThrough(agent, 'back again')).toBe('back again');
  });

  it('refuses a hub whose host key does not match the pinned fingerprint', async () => {
    const seen = hubEvents();
    const hub = await startHub({ port: PIN_PORT, ...seen });
    const log = captureLog();
    const agent = startAgent({ port: PIN_PORT, hostKeyFingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', log });
    await waitFor(() => log.lines.filter((line) => /does not match the pinned/.test(line.message)).length >= 2, 3_000, 'two refused attempts');
    expect(agent.connected).toBe(false);
    expect(seen.events).toEqual([]);
    expect(log.find(/does not match the pinned/)?.message).toContain(hub.hostKeyFingerprint!);
  });

  it('trusts the first host key it sees, records it, and refuses a different one later', async () => {
    const knownHostsFile = join(dir, 'tofu_known_hosts');
    const first = await startHub({ port: TOFU_PORT, hostKeyFile: join(dir, 'hub-a', 'host_key') });
    const log = captureLog();
    const agent = startAgent({ port: TOFU_PORT, knownHostsFile, log });
    await agent.waitConnected(5_000);
    expect(readFileSync(knownHostsFile, 'utf8')).toMatch(/^\[127\.0\.0\.1\]:13025 ssh-ed25519 AAAA\S+\n$/);
    await first.stop();

    const impostor = await startHub({ port: TOFU_PORT, hostKeyFile: join(dir, 'hub-b', 'host_key') });
    expect(impostor.hostKeyFingerprint).not.toBe(first.hostKeyFingerprint);
    await waitFor(() => log.find(/differs from the one recorded/) !== undefined, 3_000, 'host key change detected');
    expect(agent.connected).toBe(false);
    expect(impostor.connectedAgents()).toEqual([]);
  });
});
