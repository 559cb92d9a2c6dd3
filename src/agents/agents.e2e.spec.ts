import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { Client } from 'ssh2';
import { startEchoServer, TestServer, waitFor } from '../../test/fixtures/tunnel/tunnel-fixtures';
import { eventCount, startTestHub, TestHub } from '../../test/support/test-hub';
import { generateAgentKey, SshKeyPair, TunnelClient } from '../tunnel';
import { ProjectionsService } from '../projection-runner/projections.service';
import { AgentTunnel } from './agent-tunnel.service';

/** Nothing listens here but the test's echo: the test hub is driven by supertest, without a listening API. */
const API_PORT = 12703;

/** The hub's real agent registry and its real tunnel policy, over the API and a real SSH connection. */
describe('agents: registration, inventory and the tunnel policy', () => {
  let hub: TestHub;
  let dir: string;
  let keys: SshKeyPair[];

  beforeEach(async () => {
    hub = await startTestHub({ SENDENSE_NBD_PORTS: '12700-12702', SENDENSE_API_PORT: String(API_PORT) });
    dir = mkdtempSync(join(tmpdir(), 'sendense-agents-e2e-'));
    keys = await Promise.all(['a', 'b'].map((name) => generateAgentKey(join(dir, name))));
  });
  afterEach(async () => {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const register = (name: string, publicKey: string) => hub.admin(hub.http().post('/api/v1/agents')).send({ name, publicKey });
  const allocate = async (jobId: string) => (await hub.admin(hub.http().post('/api/v1/nbd/ports/allocate')).send({ jobId, diskId: 'disk0' }).expect(201)).body;
  const vms = [{ vmId: 'vm1', name: 'web', disks: [{ diskId: 'disk0', path: '/images/vm1.qcow2', format: 'qcow2', virtualSize: 1024, changeTracking: 'dirty-bitmap' }] }];

  it('registers an agent with a token named after it, and refuses a second one with its name or key', async () => {
    const a = await register('esx-a', keys[0].publicKey).expect(201);
    expect(a.body).toEqual({ agentId: expect.any(String), name: 'esx-a', fingerprint: keys[0].fingerprint, token: expect.stringMatching(/^sdt_/), ssh: { port: expect.any(Number), hostKeyFingerprint: expect.stringMatching(/^SHA256:/) } });
    const tokens = await hub.admin(hub.http().get('/api/v1/tokens')).expect(200);
    expect(tokens.body).toEqual([expect.objectContaining({ name: 'agent-esx-a', status: 'active' })]);

    const before = await eventCount(hub.db);
    expect((await register('esx-a', keys[1].publicKey).expect(409)).body.message).toBe('an agent named esx-a is already registered');
    expect((await register('esx-b', keys[0].publicKey).expect(409)).body.message).toBe(`the key ${keys[0].fingerprint} is already registered to another agent`);
    expect((await register('esx-b', 'ssh-ed25519 not-a-key').expect(400)).body.message).toMatch(/publicKey must be one OpenSSH public key line/);
    expect(await eventCount(hub.db)).toBe(before);

    const listed = await hub.admin(hub.http().get('/api/v1/agents')).expect(200);
    expect(listed.body).toEqual([{ agentId: a.body.agentId, name: 'esx-a', fingerprint: keys[0].fingerprint, connected: false, remoteAddress: null, lastSeenAt: null, registeredAt: expect.any(String) }]);
  });

  it('takes an inventory only from the agent itself or the admin', async () => {
    const a = (await register('esx-a', keys[0].publicKey).expect(201)).body;
    const b = (await register('esx-b', keys[1].publicKey).expect(201)).body;
    const as = (token: string, agentId: string) => hub.http().put(`/api/v1/agents/${agentId}/inventory`).set('Authorization', `Bearer ${token}`);

    expect((await as(a.token, a.agentId).send({ vms }).expect(200)).body).toEqual({ agentId: a.agentId, vms: 1, refused: [] });
    const refused = await as(b.token, a.agentId).send({ vms: [] }).expect(403);
    expect(refused.body.message).toBe('only the agent itself may report its inventory');
    await hub.admin(hub.http().put(`/api/v1/agents/${b.agentId}/inventory`)).send({ vms: [] }).expect(200);
    await hub.admin(hub.http().put('/api/v1/agents/6f1c1c44-1111-4e4e-9a9a-0123456789ab/inventory')).send({ vms: [] }).expect(404);
    await hub.admin(hub.http().put('/api/v1/agents/not-a-uuid/inventory')).send({ vms: [] }).expect(400);

    const listed = await hub.admin(hub.http().get('/api/v1/vms')).expect(200);
    expect(listed.body).toEqual([{ vmId: 'vm1', name: 'web', agentId: a.agentId, agentConnected: false, powerState: null, disks: vms[0].disks, disksLeftOut: [], reportedAt: expect.any(String) }]);

    // what a VMware source adds: the VM's power state, each disk's label and datastore; and a disk it cannot read, with why
    const vmware = [
      {
        vmId: '5003a1b2-0000-0000-0000-000000000001',
        name: 'db',
        powerState: 'on',
        disks: [{ diskId: 'disk-2000', path: '[ds1] db/db.vmdk', format: 'raw', virtualSize: 1024, changeTracking: 'cbt', label: 'Hard disk 1', datastore: 'ds1' }],
        disksLeftOut: [{ diskId: 'disk-2001', reason: 'not a datastore path: /vmfs/devices/disks/naa.1' }],
      },
    ];
    await as(b.token, b.agentId).send({ vms: vmware }).expect(200);
    const withVmware = await hub.admin(hub.http().get('/api/v1/vms')).expect(200);
    expect(withVmware.body).toContainEqual({ ...vmware[0], agentId: b.agentId, agentConnected: false, reportedAt: expect.any(String) });
    // a reason is kept without what would drive an operator's terminal
    await as(b.token, b.agentId).send({ vms: [{ ...vmware[0], name: 'db\u001b[2J', disksLeftOut: [{ diskId: 'disk-2001', reason: 'gone\u001b[2J\r' }] }] }).expect(200);
    expect((await hub.admin(hub.http().get('/api/v1/vms')).expect(200)).body.find((v: { vmId: string }) => v.vmId === vmware[0].vmId)).toMatchObject({ name: 'db?[2J', disksLeftOut: [{ diskId: 'disk-2001', reason: 'gone?[2J?' }] });
    const before = await eventCount(hub.db);
    for (const bad of [{ ...vmware[0], vmId: 'vm..1' }, { ...vmware[0], vmId: '../vm1' }, { ...vmware[0], disks: [{ ...vmware[0].disks[0], diskId: 'disk/../x' }] }, { ...vmware[0], powerState: 'poweredOn' }, { ...vmware[0], disks: [{ ...vmware[0].disks[0], changeTracking: 'vmware' }] }, { ...vmware[0], disks: [{ ...vmware[0].disks[0], label: 'x'.repeat(257) }] }, { ...vmware[0], disksLeftOut: 'disk-2001' }, { ...vmware[0], disksLeftOut: [{ diskId: 'disk\n2001', reason: 'r' }] }, { ...vmware[0], disksLeftOut: [{ diskId: 'disk-2001', reason: '' }] }, { ...vmware[0], disksLeftOut: [{ diskId: 'disk-2001', reason: 'x'.repeat(1001) }] }, { ...vmware[0], disksLeftOut: [{ diskId: 'disk\u202e2001', reason: 'r' }] }]) {
      await as(b.token, b.agentId).send({ vms: [bad] }).expect(400);
    }
    // one VM or one disk twice in a report: accepted, the VMs read model stopped at that event for good
    expect((await as(b.token, b.agentId).send({ vms: [vmware[0], vmware[0]] }).expect(400)).body.message).toEqual(['vms must not list a vmId twice']);
    expect((await as(b.token, b.agentId).send({ vms: [{ ...vmware[0], disks: [vmware[0].disks[0], vmware[0].disks[0]] }] }).expect(400)).body.message).toEqual(['vms.0.disks must not list a diskId twice']);
    expect(await eventCount(hub.db)).toBe(before);
  });

  it('answers 400 to a NUL anywhere in a request, before any guard or handler reads it (PostgreSQL takes none: it was a 500)', async () => {
    const a = (await register('esx-a', keys[0].publicKey).expect(201)).body;
    const tenantToken = (await hub.admin(hub.http().post('/api/v1/tokens')).send({ name: 'acme-viewer', role: 'viewer', tenantId: 'acme' }).expect(201)).body.token;
    const before = await eventCount(hub.db);
    const nul = 'the body holds a NUL character, which no field takes';
    const inventory = (body: unknown) => hub.http().put(`/api/v1/agents/${a.agentId}/inventory`).set('Authorization', `Bearer ${a.token}`).send(body as object);
    expect((await inventory({ vms: [{ ...vms[0], name: 'we\u0000b' }] }).expect(400)).body.message).toBe(nul);
    expect((await inventory({ vms: [{ ...vms[0], disks: [{ ...vms[0].disks[0], path: '/images/\u0000' }] }] }).expect(400)).body.message).toBe(nul);
    expect((await inventory({ vms, 'x\u0000': 1 }).expect(400)).body.message).toBe(nul);
    // a tenant's token: the tenant guard looked the id up before anything validated it
    const asTenant = (path: string) => hub.http().get(path).set('Authorization', `Bearer ${tenantToken}`);
    expect((await asTenant('/api/v1/backups/%00').expect(400)).body.message).toBe('the path or query string holds a NUL character, which no field takes');
    expect((await asTenant('/api/v1/vms?x=a%00').expect(400)).body.message).toBe('the path or query string holds a NUL character, which no field takes');
    expect(await eventCount(hub.db)).toBe(before);
    // the same requests without the NUL are answered as before
    await inventory({ vms }).expect(200);
    await asTenant('/api/v1/backups/6f1c1c44-1111-4e4e-9a9a-0123456789ab').expect(404);
  });

  it('keeps a VM with the agent that first reported it: another agent reporting its vmId is refused and recorded, until an admin moves it', async () => {
    const a = (await register('esx-a', keys[0].publicKey).expect(201)).body;
    const b = (await register('esx-b', keys[1].publicKey).expect(201)).body;
    const as = (token: string, agentId: string) => hub.http().put(`/api/v1/agents/${agentId}/inventory`).set('Authorization', `Bearer ${token}`);
    const owner = async (vmId: string) => (await hub.admin(hub.http().get('/api/v1/vms')).expect(200)).body.find((v: { vmId: string }) => v.vmId === vmId)?.agentId;
    const theirs = [{ ...vms[0], name: 'stolen', disks: [{ ...vms[0].disks[0], path: '/attacker/vm1.qcow2' }] }, { vmId: 'vm-b', name: 'own', disks: [] }];

    await as(a.token, a.agentId).send({ vms }).expect(200);
    const refused = (await as(b.token, b.agentId).send({ vms: theirs }).expect(200)).body;
    expect(refused).toEqual({ agentId: b.agentId, vms: 1, refused: [{ vmId: 'vm1', reason: 'another agent owns this VM; an admin can move it to this agent' }] });
    const listed = (await hub.admin(hub.http().get('/api/v1/vms')).expect(200)).body;
    expect(listed.find((v: { vmId: string }) => v.vmId === 'vm1')).toMatchObject({ agentId: a.agentId, name: 'web', disks: vms[0].disks });
    expect(await owner('vm-b')).toBe(b.agentId);
    const conflicts = await hub.admin(hub.http().get('/api/v1/vm-ownership-conflicts')).expect(200);
    expect(conflicts.body).toEqual([{ vmId: 'vm1', ownerAgentId: a.agentId, claimantAgentId: b.agentId, refusedAt: expect.any(String) }]);
    const story = (await hub.admin(hub.http().get('/api/v1/audit/streams/vm-owner-vm1')).expect(200)).body.events.map((e: { type: string; data: unknown }) => [e.type, e.data]);
    expect(story).toEqual([
      ['VmClaimed', { vmId: 'vm1', agentId: a.agentId }],
      ['VmClaimRefused', { vmId: 'vm1', ownerAgentId: a.agentId, claimantAgentId: b.agentId }],
    ]);

    const reportedByB = (await hub.admin(hub.http().get(`/api/v1/audit/streams/agent-${b.agentId}`)).expect(200)).body.events.filter((e: { type: string }) => e.type === 'VmInventoryReported');
    expect(reportedByB.map((e: { data: { vms: { vmId: string }[] } }) => e.data.vms.map((v) => v.vmId))).toEqual([['vm-b']]);

    // the claimant reporting again records nothing more; dropping the VM does not drop the owner's; the owner's unchanged report keeps it
    const before = await eventCount(hub.db);
    await as(b.token, b.agentId).send({ vms: theirs }).expect(200);
    expect(await eventCount(hub.db)).toBe(before);
    await as(b.token, b.agentId).send({ vms: [] }).expect(200);
    await as(a.token, a.agentId).send({ vms }).expect(200);
    expect(await owner('vm1')).toBe(a.agentId);

    // a history recorded before ownership was (another agent's report naming the VM) does not move it either
    const legacy = await hub.db.store.append(`agent-${b.agentId}`, [{ type: 'VmInventoryReported', data: { agentId: b.agentId, vms: theirs }, metadata: { correlationId: randomUUID(), causationId: randomUUID(), actor: 'test', schemaVersion: 1 } }]);
    await hub.app.get(ProjectionsService).waitFor('agents', legacy.position);
    expect(await owner('vm1')).toBe(a.agentId);
    expect((await hub.admin(hub.http().get('/api/v1/vms')).expect(200)).body.find((v: { vmId: string }) => v.vmId === 'vm1')).toMatchObject({ name: 'web', disks: vms[0].disks });

    // only an admin moves it, and then the old owner is the one refused
    const move = (token: string, body: object) => hub.http().post('/api/v1/vms/vm1/move').set('Authorization', `Bearer ${token}`).send(body);
    await move(b.token, { agentId: b.agentId, reason: 'mine now' }).expect(403);
    await hub.admin(hub.http().post('/api/v1/vms/vm1/move')).send({ agentId: 'not-a-uuid', reason: 'x' }).expect(400);
    await hub.admin(hub.http().post('/api/v1/vms/..%2Fx/move')).send({ agentId: b.agentId, reason: 'x' }).expect(400);
    await hub.admin(hub.http().post('/api/v1/vms/vm1/move')).send({ agentId: '6f1c1c44-1111-4e4e-9a9a-0123456789ab', reason: 'x' }).expect(404);
    expect(await owner('vm1')).toBe(a.agentId);
    await hub.admin(hub.http().post('/api/v1/vms/vm1/move')).send({ agentId: b.agentId, reason: 'host migrated' }).expect(200);
    expect(await owner('vm1')).toBe(b.agentId);
    expect((await hub.admin(hub.http().get('/api/v1/vm-ownership-conflicts')).expect(200)).body).toEqual([]);
    expect((await as(a.token, a.agentId).send({ vms }).expect(200)).body.refused).toEqual([expect.objectContaining({ vmId: 'vm1' })]);
    await as(b.token, b.agentId).send({ vms: theirs }).expect(200);
    expect((await hub.admin(hub.http().get('/api/v1/vms')).expect(200)).body.find((v: { vmId: string }) => v.vmId === 'vm1')).toMatchObject({ agentId: b.agentId, name: 'stolen' });
  });

  describe('the tunnel policy the hub installs on its SSH server', () => {
    const echoes: TestServer[] = [];
    const clients: TunnelClient[] = [];
    afterEach(async () => {
      await Promise.all(clients.splice(0).map((c) => c.stop()));
      await Promise.all(echoes.splice(0).map((s) => s.close()));
    });

    function roundTrip(stream: Duplex, text: string): Promise<string> {
      return new Promise((resolve, reject) => {
        stream.once('data', (data: Buffer) => resolve(data.toString()));
        stream.once('error', reject);
        stream.write(text);
      });
    }

    async function connect(key: SshKeyPair, ssh: { port: number; hostKeyFingerprint: string }): Promise<TunnelClient> {
      const client = new TunnelClient({ host: '127.0.0.1', port: ssh.port, privateKeyFile: key.privateKeyPath, hostKeyFingerprint: ssh.hostKeyFingerprint, localApiPort: 1, reconnect: { initialMs: 100 } });
      clients.push(client);
      client.start();
      await client.waitConnected(5_000);
      return client;
    }

    it("lets an agent reach the hub API only: not its own job's NBD port, not another job's, not an unleased port, not a non-loopback host", async () => {
      const a = (await register('esx-a', keys[0].publicKey).expect(201)).body;
      const b = (await register('esx-b', keys[1].publicKey).expect(201)).body;
      const own = await allocate('job-a');
      const other = await allocate('job-b');
      const unleased = 12702;
      expect([own.port, other.port]).toEqual([12700, 12701]);
      // Something answers on every port, so a refusal is the policy's and not an empty port's; the "API" is an echo on the API port.
      for (const port of [own.port, other.port, unleased, API_PORT]) echoes.push(await startEchoServer(port));

      // A bare SSH client names hosts the agent program never would. It is agent a too, so it goes first: one session per agent.
      const raw = new Client();
      await new Promise<void>((resolve, reject) => {
        raw.once('ready', resolve).once('error', reject);
        raw.connect({ host: '127.0.0.1', port: a.ssh.port, username: 'sendense-agent', privateKey: readFileSync(keys[0].privateKeyPath), hostVerifier: () => true });
      });
      try {
        const open = (host: string, port: number) => new Promise<Duplex>((resolve, reject) => raw.forwardOut('127.0.0.1', 0, host, port, (err, ch) => (err ? reject(err) : resolve(ch))));
        await expect(open('10.1.2.3', API_PORT)).rejects.toThrow();
        await expect(open('192.168.0.1', own.port)).rejects.toThrow();
        await expect(open('localhost', own.port)).rejects.toThrow();
        const allowed = await open('localhost', API_PORT);
        expect(await roundTrip(allowed, 'loopback')).toBe('loopback');
        allowed.destroy();
      } finally {
        raw.end();
      }
      const tunnel = hub.app.get(AgentTunnel);
      await waitFor(() => !tunnel.isConnected(a.agentId), 5_000, 'the bare client to leave');

      const agent = await connect(keys[0], a.ssh);
      await waitFor(() => tunnel.isConnected(a.agentId), 5_000, 'the hub to see agent a');
      const api = await agent.openDirect(API_PORT);
      expect(await roundTrip(api, 'api')).toBe('api');
      api.destroy();
      // Backup data goes to the exports over TLS with their own keys (nbd-exports.e2e.spec.ts), never through the tunnel.
      for (const port of [own.port, other.port, unleased]) await expect(agent.openDirect(port)).rejects.toThrow(`hub refused a channel to its port ${port}`);

      const second = await connect(keys[1], b.ssh);
      await expect(second.openDirect(other.port)).rejects.toThrow(`hub refused a channel to its port ${other.port}`);

      const connected = async () => (await hub.admin(hub.http().get('/api/v1/agents')).expect(200)).body.map((x: { name: string; connected: boolean }) => [x.name, x.connected]);
      const deadline = Date.now() + 5_000;
      while (JSON.stringify(await connected()) !== JSON.stringify([['esx-a', true], ['esx-b', true]]) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await connected()).toEqual([
        ['esx-a', true],
        ['esx-b', true],
      ]);
    });
  });
});
