import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, Server } from 'node:tls';
import { promisify } from 'node:util';
import { certificateFingerprint, hubFetch, readAll, hubRequest } from '../../src/wire/hub-tls';
import { buildSampleVm } from '../fixtures/vm/sample-vm';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { freePort, processesMentioning, spawnSendense, SpawnedCli } from '../support/processes';

const run = promisify(execFile);

/** A self-signed P-256 certificate of the test's own: another server's, as a network attacker would present. */
async function makeCertificate(dir: string): Promise<{ cert: Buffer; key: Buffer; fingerprint: string }> {
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '2', '-subj', '/CN=127.0.0.1']);
  const cert = readFileSync(join(dir, 'c.pem'));
  return { cert, key: readFileSync(join(dir, 'k.pem')), fingerprint: await opensslFingerprint(join(dir, 'c.pem')) };
}

/** The fingerprint as openssl computes it (SHA-256 of the DER), in the `SHA256:<base64>` form: not through the product's code. */
async function opensslFingerprint(certFile: string): Promise<string> {
  const { stdout } = await run('openssl', ['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256']);
  const hex = stdout.trim().split('=')[1].replace(/:/g, '');
  return `SHA256:${Buffer.from(hex, 'hex').toString('base64').replace(/=+$/, '')}`;
}

/** `sendense ...` to its end, failing the test (with its output) if it does not end within the time. */
async function finished(cli: SpawnedCli, timeoutMs = 30_000): Promise<{ code: number | null; output: string }> {
  const timer = new Promise<never>((_, reject) =>
    setTimeout(() => {
      // a hub that should have refused to start would otherwise outlive the test
      cli.child.kill('SIGKILL');
      reject(new Error(`still running after ${timeoutMs} ms:\n${cli.output()}`));
    }, timeoutMs).unref(),
  );
  const { code } = await Promise.race([cli.exited, timer]);
  return { code, output: cli.output() };
}

/** The lab's hub, agent and calls over HTTPS with the hub's certificate pinned. */
class TlsLab extends BackupLab {
  fingerprint = '';

  constructor(private readonly tlsHubEnv: NodeJS.ProcessEnv) {
    super(tlsHubEnv);
  }

  get base(): string {
    return `https://127.0.0.1:${this.apiPort}`;
  }

  async startTls(): Promise<void> {
    await this.prepare();
    this.vm = await buildSampleVm(join(this.dir, 'vm'), 'vm1');
    await this.startHub();
    this.repositoryId = (await this.api('POST', '/api/v1/repositories', { name: 'lab', kind: 'local', path: this.repoRoot })).body.repositoryId;
    const registered = spawnSendense(['agent', 'register', '--hub', this.base, '--hub-fingerprint', this.fingerprint, '--name', 'lab-agent'], this.agentEnv());
    const { code, output } = await finished(registered);
    if (code !== 0) throw new Error(`agent register over HTTPS failed: ${output}`);
    await this.startAgent();
  }

  override async startHub(): Promise<void> {
    this.hub = spawnSendense(['hub'], { ...this.hubEnvironment(), SENDENSE_NBD_PORTS: '14740-14771', ...this.tlsHubEnv });
    await this.until(async () => {
      if (this.hub!.child.exitCode !== null) throw new Error(`the hub exited: ${this.hub!.output()}`);
      const certFile = join(this.hubDataDir, 'tls', 'api.crt');
      if (!this.fingerprint && statSync(certFile, { throwIfNoEntry: false })) this.fingerprint = await opensslFingerprint(certFile);
      return !!this.fingerprint && (await this.api('GET', '/api/v1/health')).status === 200;
    }, 60_000, 'the hub to serve HTTPS');
  }

  override async apiAt(baseUrl: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const res = await hubFetch({ url: new URL(baseUrl.replace('http:', 'https:')), fingerprint: this.fingerprint }, {
      method,
      path,
      headers: { ...headers, Authorization: `Bearer ${LAB_TOKEN}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  override api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    return this.apiAt(this.base, method, path, body, headers);
  }
}

/**
 * The hub API carries tokens (the admin token among them): beyond loopback it is served over HTTPS only, and every
 * client of it (the CLI, `agent register`, the agent through its tunnel, a hub adding a remote) pins the hub's
 * certificate and sends nothing to a server presenting another one. Real hub and agent processes, real TLS.
 */
describe('TLS on the hub API', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-tls-'));
    // the embedded database server of a hub started as root runs as postgres, which must reach its data dir
    chmodSync(dir, 0o755);
  });
  afterAll(() => {
    for (const p of processesMentioning(dir)) process.kill(p.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a hub told to serve the API beyond loopback in clear refuses to start, naming the setting to change', async () => {
    const port = await freePort();
    const hub = spawnSendense(['hub'], { SENDENSE_DATA_DIR: join(dir, 'clear'), SENDENSE_API_PORT: String(port), SENDENSE_API_BIND: '0.0.0.0', SENDENSE_API_TLS: 'off' });
    const { code, output } = await finished(hub);
    expect(code).toBe(2);
    expect(output).toContain('SENDENSE_API_TLS=off with SENDENSE_API_BIND=0.0.0.0: other hosts could reach the API and its tokens would cross the network in clear');
    expect(output).toContain('unset SENDENSE_API_TLS (or set it to on) to serve HTTPS, or bind the API to 127.0.0.1');
    // refused before anything started: no database server was made
    expect(statSync(join(dir, 'clear', 'postgres'), { throwIfNoEntry: false })).toBeUndefined();
  });

  describe('a hub bound to 0.0.0.0 (HTTPS by default) with an agent registered over HTTPS', () => {
    const lab = new TlsLab({ SENDENSE_API_BIND: '0.0.0.0', SENDENSE_LOG_LEVEL: 'info' });
    const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnSendense(args, { SENDENSE_TOKEN: LAB_TOKEN, ...env });
    beforeAll(() => lab.startTls(), 180_000);
    afterAll(() => lab.close());

    it('made its certificate at first start (key 0600) and states its fingerprint in GET /api/v1/identity and its start log', async () => {
      expect(statSync(join(lab.hubDataDir, 'tls', 'api.key')).mode & 0o777).toBe(0o600);
      const identity = await lab.api('GET', '/api/v1/identity');
      expect(identity.body.api).toEqual({ tls: true, certificateFingerprint: lab.fingerprint });
      expect(lab.hub!.output()).toContain(`hub listening on https://0.0.0.0:${lab.apiPort} with TLS certificate ${lab.fingerprint}`);
      // a client asking in clear gets no answer from the TLS port
      await expect(fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/health`)).rejects.toThrow();
    });

    it('the CLI works with the fingerprint pinned (SENDENSE_HUB_FINGERPRINT or --hub-fingerprint), and refuses without it or with another', async () => {
      const hubEnv = { SENDENSE_HUB: lab.base };
      const byEnv = await finished(cli(['backup', 'list'], { ...hubEnv, SENDENSE_HUB_FINGERPRINT: lab.fingerprint }));
      expect(byEnv).toEqual({ code: 0, output: '' });
      // openssl's form of the same fingerprint, as an operator may copy it
      const hex = Buffer.from(lab.fingerprint.slice(7), 'base64').toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
      const byFlag = await finished(cli(['restore-points', 'list', '--vm', 'vm1', '--hub-fingerprint', hex], hubEnv));
      expect(byFlag.code).toBe(0);

      const unpinned = await finished(cli(['backup', 'list'], hubEnv));
      expect(unpinned.code).toBe(1);
      expect(unpinned.output).toContain(`the certificate of 127.0.0.1:${lab.apiPort} is not trusted`);
      const other = await finished(cli(['backup', 'list'], { ...hubEnv, SENDENSE_HUB_FINGERPRINT: `SHA256:${'A'.repeat(43)}` }));
      expect(other.code).toBe(1);
      expect(other.output).toContain(`the certificate of 127.0.0.1:${lab.apiPort} is ${lab.fingerprint}, not the pinned SHA256:${'A'.repeat(43)}: refusing to send anything to it`);
    });

    it('agent register kept the pinned fingerprint; agent run pins it through the tunnel, and a backup completes', async () => {
      const state = JSON.parse(readFileSync(join(lab.dir, 'agent', 'agent.json'), 'utf8'));
      expect(state).toMatchObject({ hubUrl: lab.base, hubFingerprint: lab.fingerprint });
      const job = await lab.waitForJob(await lab.backup('full'), 120_000);
      expect(job).toMatchObject({ status: 'completed' });
      // the agent's reports reached the hub over the tunnel's HTTPS: the transfer was recorded disk by disk
      expect((await lab.events(job.jobId)).map((e) => e.type)).toEqual(expect.arrayContaining(['DiskTransferCompleted', 'BackupCompleted']));
    }, 180_000);

    it('remote add through the CLI over HTTPS; the hub reaches a remote serving HTTPS through the SSH tunnel', async () => {
      const issued = await lab.api('POST', '/api/v1/tokens', { name: 'offsite', role: 'sync' });
      expect(issued.status).toBe(201);
      const { ssh } = (await lab.api('GET', '/api/v1/identity')).body;
      // the remote is this same hub: its API reached through its own SSH endpoint speaks HTTPS
      const added = await finished(
        cli(['remote', 'add', '--name', 'self', '--url', `ssh://127.0.0.1:${ssh.port}`, '--token', issued.body.token, '--fingerprint', ssh.hostKeyFingerprint], { SENDENSE_HUB: lab.base, SENDENSE_HUB_FINGERPRINT: lab.fingerprint }),
      );
      expect(added.code).toBe(0);
      expect(added.output).toMatch(/^[0-9a-f-]{36} {2}self {2}ssh:\/\/127\.0\.0\.1:\d+ {2}SHA256:/);
    }, 60_000);

    it('a second hub pulls a restore point from it: the remote API, reached inside the pinned SSH connection, spoken over HTTPS', async () => {
      const point = (await lab.waitForJob(await lab.backup('auto'), 120_000)).restorePointId as string;
      const issued = await lab.api('POST', '/api/v1/tokens', { name: 'second-hub', role: 'sync' });
      const { ssh } = (await lab.api('GET', '/api/v1/identity')).body;
      const second = new BackupLab({ SENDENSE_NBD_PORTS: '14780-14811' });
      try {
        await second.startHubOnly();
        const remote = await second.api('POST', '/api/v1/remotes', { name: 'tls-primary', url: `ssh://127.0.0.1:${ssh.port}`, token: issued.body.token, fingerprint: ssh.hostKeyFingerprint });
        expect(remote.status).toBe(201);
        const job = await second.api('POST', '/api/v1/sync-jobs', { remoteId: remote.body.remoteId, repositoryId: second.repositoryId });
        const started = await second.api('POST', `/api/v1/sync-jobs/${job.body.syncJobId}/run`);
        expect(started.status).toBe(202);
        let last: any;
        await second.until(async () => {
          last = (await second.api('GET', `/api/v1/sync-jobs/${job.body.syncJobId}`)).body.lastRun;
          return last?.runId === started.body.runId && last.status !== 'running';
        }, 120_000, 'the sync run');
        expect({ status: last.status, reason: last.reason }).toEqual({ status: 'completed', reason: null });
        expect(last.synced).toContain(point);
        const mine = (await second.api('GET', `/api/v1/restore-points/${point}`)).body;
        const theirs = (await lab.api('GET', `/api/v1/restore-points/${point}`)).body;
        for (const disk of theirs.disks) {
          await run('qemu-img', ['compare', '-q', '-U', join(lab.repoRoot, disk.file), join(second.repoRoot, mine.disks.find((d: { diskId: string }) => d.diskId === disk.diskId).file)]);
        }
      } finally {
        await second.close();
      }
    }, 240_000);
  });

  describe('a server presenting another certificate (a network attacker in the middle)', () => {
    let server: Server;
    let port = 0;
    let other: { cert: Buffer; key: Buffer; fingerprint: string };
    const seen = { connections: 0, bytes: Buffer.alloc(0) };
    /** What a pinned client would be told to trust: not the attacker's certificate. */
    let pinned = '';

    beforeAll(async () => {
      other = await makeCertificate(mkdtempSync(join(dir, 'attacker-')));
      pinned = (await makeCertificate(mkdtempSync(join(dir, 'hub-')))).fingerprint;
      server = createServer({ cert: other.cert, key: other.key }, (socket) => {
        socket.on('data', (data: Buffer) => {
          seen.bytes = Buffer.concat([seen.bytes, data]);
          // answers like a hub would, so a client that did send its request finishes (the control below)
          if (seen.bytes.includes('\r\n\r\n')) socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"jobs":[]}');
        });
        socket.on('error', () => undefined);
      });
      server.on('connection', () => seen.connections++);
      server.on('tlsClientError', () => undefined);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise((resolve) => server.close(resolve)));
    beforeEach(() => {
      seen.connections = 0;
      seen.bytes = Buffer.alloc(0);
    });

    const url = () => `https://127.0.0.1:${port}`;

    it('control: a client pinned to this very certificate does send its request and token to it', async () => {
      expect(certificateFingerprint(new X509Certificate(other.cert).raw)).toBe(other.fingerprint);
      const { code } = await finished(spawnSendense(['backup', 'list'], { SENDENSE_TOKEN: 'control-token-0123456789', SENDENSE_HUB: url(), SENDENSE_HUB_FINGERPRINT: other.fingerprint }));
      expect(code).toBe(0);
      expect(seen.bytes.toString()).toContain('Authorization: Bearer control-token-0123456789');
    });

    it('the CLI, agent register and remote add reach it, are refused its certificate, and send it nothing: no request, no token', async () => {
      const token = 'stolen-if-sent-0123456789';
      const attempts: [string, string[], NodeJS.ProcessEnv][] = [
        ['backup list', ['backup', 'list'], { SENDENSE_HUB: url(), SENDENSE_HUB_FINGERPRINT: pinned }],
        ['agent register', ['agent', 'register', '--hub', url(), '--hub-fingerprint', pinned, '--name', 'a1'], { SENDENSE_AGENT_DIR: join(dir, 'agent-a1') }],
        ['remote add', ['remote', 'add', '--name', 'r', '--url', 'ssh://127.0.0.1:2222', '--token', token, '--fingerprint', pinned, '--hub-fingerprint', pinned], { SENDENSE_HUB: url() }],
        ['backup list, nothing pinned', ['backup', 'list'], { SENDENSE_HUB: url() }],
        ['agent register, nothing pinned', ['agent', 'register', '--hub', url(), '--name', 'a2'], { SENDENSE_AGENT_DIR: join(dir, 'agent-a2') }],
      ];
      for (const [what, args, env] of attempts) {
        const before = seen.connections;
        const { code, output } = await finished(spawnSendense(args, { SENDENSE_TOKEN: token, ...env }));
        expect({ what, code, refused: /not the pinned|is not trusted/.test(output) }).toEqual({ what, code: 1, refused: true });
        expect({ what, reached: seen.connections > before }).toEqual({ what, reached: true });
        expect({ what, received: seen.bytes.length }).toEqual({ what, received: 0 });
      }
    }, 120_000);

    it('the library call itself rejects before writing, with the attacker\'s fingerprint named', async () => {
      await expect(hubRequest({ url: new URL(url()), fingerprint: pinned }, { method: 'GET', path: '/api/v1/health', headers: { Authorization: 'Bearer x' } }).then(readAll)).rejects.toThrow(`is ${other.fingerprint}, not the pinned ${pinned}`);
      expect(seen.bytes.length).toBe(0);
    });
  });
});
