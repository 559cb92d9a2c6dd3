import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { AddressInfo, createServer as createTcpServer, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { normalizeThumbprint, PinnedAgent, VsphereCertificateError } from './pinned-tls';

interface Pem {
  key: string;
  cert: string;
  sha1: string;
  sha256: string;
}

let dir: string;
let selfSigned: Pem;
let ca: string;
let signedForIp: Pem;
let signedForOtherName: Pem;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function pem(name: string): Pem {
  const cert = readFileSync(join(dir, `${name}.pem`), 'utf8');
  const der = new X509Certificate(cert).raw;
  const hex = (algorithm: string) => createHash(algorithm).update(der).digest('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
  return { key: readFileSync(join(dir, `${name}.key`), 'utf8'), cert, sha1: hex('sha1'), sha256: hex('sha256') };
}

function signed(name: string, san: string): Pem {
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  return pem(name);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sendense-pinned-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'self.key', '-out', 'self.pem', '-days', '2', '-subj', '/CN=vcenter', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  selfSigned = pem('self');
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Sendense test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
  signedForIp = signed('leaf-ip', 'IP:127.0.0.1');
  signedForOtherName = signed('leaf-other', 'DNS:elsewhere.example');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A TLS server that records every byte a client sent it after the handshake, and answers each request "ok". */
class RecordingServer {
  received = '';
  /** Clients that got through the handshake. */
  connections = 0;
  /** Clients that connected at all (a refused one may leave before the server finished its handshake). */
  tcpConnections = 0;
  private readonly server: tls.Server;
  private readonly open = new Set<tls.TLSSocket>();

  constructor(identity: Pem) {
    this.server = tls.createServer({ key: identity.key, cert: identity.cert }, (socket) => {
      this.connections++;
      this.open.add(socket);
      socket.on('close', () => this.open.delete(socket));
      socket.on('error', () => undefined);
      let pending = '';
      socket.on('data', (data) => {
        this.received += data.toString('latin1');
        pending += data.toString('latin1');
        while (pending.includes('\r\n\r\n')) {
          pending = pending.slice(pending.indexOf('\r\n\r\n') + 4);
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
        }
      });
    });
    this.server.on('tlsClientError', () => undefined);
    this.server.on('connection', () => this.tcpConnections++);
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  /** Waits for the clients to go, so that whatever they sent has arrived. */
  async closed(): Promise<void> {
    for (let i = 0; i < 100 && this.open.size; i++) await new Promise((r) => setTimeout(r, 20));
  }

  async close(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

function get(agent: https.Agent, port: number, path = '/sdk'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'Content-Type': 'text/xml' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end('<Login><password>secret-password</password></Login>');
  });
}

describe('PinnedAgent', () => {
  let server: RecordingServer;
  let port: number;
  const agents: https.Agent[] = [];
  const agent = (options: ConstructorParameters<typeof PinnedAgent>[0]) => {
    const a = new PinnedAgent(options);
    agents.push(a);
    return a;
  };

  beforeEach(async () => {
    server = new RecordingServer(selfSigned);
    port = await server.listen();
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) a.destroy();
    await server.close();
  });

  it('connects to the pinned certificate, by SHA-256 or SHA-1, with or without colons, in either case', async () => {
    for (const thumbprint of [selfSigned.sha256, selfSigned.sha256.replace(/:/g, '').toLowerCase(), selfSigned.sha1.toLowerCase(), selfSigned.sha1.replace(/:/g, '')]) {
      expect(await get(agent({ thumbprint }), port)).toBe('ok');
    }
    expect(server.received).toContain('secret-password');
  });

  it('keeps the checked connection alive for the next request', async () => {
    const a = agent({ thumbprint: selfSigned.sha256 });
    expect(await get(a, port)).toBe('ok');
    expect(await get(a, port)).toBe('ok');
    expect(await get(a, port)).toBe('ok');
    expect(server.connections).toBe(1);
  });

  it('refuses another certificate before sending a byte, naming the thumbprints the server has', async () => {
    const wrong = signedForIp.sha256;
    const error = await get(agent({ thumbprint: wrong }), port).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VsphereCertificateError);
    expect(error).toMatchObject({ sha1: selfSigned.sha1, sha256: selfSigned.sha256 });
    expect((error as Error).message).toContain(selfSigned.sha1);
    expect((error as Error).message).toContain(selfSigned.sha256);
    expect((error as Error).message).toContain(`not the pinned one (SHA256 ${wrong})`);
    const wrongSha1 = await get(agent({ thumbprint: signedForIp.sha1 }), port).catch((e: unknown) => e);
    expect(wrongSha1).toBeInstanceOf(VsphereCertificateError);
    await server.closed();
    expect(server.tcpConnections).toBe(2);
    expect(server.received).toBe('');
  });

  it('without a thumbprint refuses a self-signed certificate before sending a byte, naming its thumbprints', async () => {
    const error = await get(agent({}), port).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VsphereCertificateError);
    expect((error as Error).message).toMatch(/not trusted by this system \(DEPTH_ZERO_SELF_SIGNED_CERT\) and no thumbprint is pinned/);
    expect((error as Error).message).toContain(selfSigned.sha256);
    expect((error as Error).message).toContain(selfSigned.sha1);
    await server.closed();
    expect(server.tcpConnections).toBe(1);
    expect(server.received).toBe('');
  });

  it('without a thumbprint accepts what normal TLS accepts: a trusted chain for the host name', async () => {
    const trusted = new RecordingServer(signedForIp);
    const trustedPort = await trusted.listen();
    const otherName = new RecordingServer(signedForOtherName);
    const otherPort = await otherName.listen();
    try {
      expect(await get(agent({ ca }), trustedPort)).toBe('ok');
      const error = await get(agent({ ca }), otherPort).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(VsphereCertificateError);
      expect((error as Error).message).toContain('ERR_TLS_CERT_ALTNAME_INVALID');
      expect(error).toMatchObject({ sha256: signedForOtherName.sha256 });
      await otherName.closed();
      expect(otherName.received).toBe('');
    } finally {
      await trusted.close();
      await otherName.close();
    }
  });

  it('gives up on a server that never completes the handshake', async () => {
    const silent: Server = createTcpServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const error = await get(agent({ thumbprint: selfSigned.sha256, handshakeTimeoutMs: 300 }), (silent.address() as AddressInfo).port).catch((e: unknown) => e);
      expect((error as Error).message).toMatch(/did not complete its TLS handshake within 300 ms/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      silent.close();
    }
  });

  it('reports a refused connection as such', async () => {
    const closed = createTcpServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const freePort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expect(get(agent({ thumbprint: selfSigned.sha256 }), freePort)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('normalizeThumbprint', () => {
  it('accepts SHA-1 and SHA-256 in the usual spellings', () => {
    expect(normalizeThumbprint('AA:bb:' + '00:'.repeat(17) + 'FF')).toBe('aabb' + '00'.repeat(17) + 'ff');
    expect(normalizeThumbprint(' ' + 'Ab'.repeat(32) + ' ')).toBe('ab'.repeat(32));
  });

  it.each(['', 'AA:BB', 'zz'.repeat(20), 'ab'.repeat(21), 'ab'.repeat(32) + '0'])('refuses %j', (thumbprint) => {
    expect(() => normalizeThumbprint(thumbprint)).toThrow(/is not a certificate thumbprint/);
    expect(() => new PinnedAgent({ thumbprint: thumbprint || 'x' })).toThrow(/is not a certificate thumbprint/);
  });
});
