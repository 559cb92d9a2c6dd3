import { ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, Server as NetServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildQemuNbdArgs } from '../../src/qemu/qemu-nbd-args';
import { TunnelServer } from '../../src/tunnel';
import { DIGEST_BLOCK_SIZE, DigestRecorder } from '../../src/wire/block-digests';
import { freePort } from '../support/processes';

const run = promisify(execFile);

/** A disk as the hostile primary serves it: a real qcow2 file, and digests computed from its real content. */
export interface ServedDisk {
  diskId: string;
  file: string;
  virtualSize: number;
  digests: Buffer;
}

/** A point as the hostile primary lists it: `meta` goes out exactly as given (hostile ids, dates, parents), `disks` serve the data. */
export interface ServedPoint {
  meta: Record<string, unknown>;
  disks: ServedDisk[];
  /** The host the export's answer names instead of the primary's own. */
  exportHost?: string;
}

export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * Block digests of `file` as the product records them: the logical content (read through its backing chain) of each
 * 64 KiB block in `[from, to)`, which is what a point wrote.
 */
export async function digestsOf(file: string, virtualSize: number, from = 0, to = virtualSize): Promise<Buffer> {
  const raw = `${file}.raw`;
  await run('qemu-img', ['convert', '-U', '-O', 'raw', file, raw]);
  const content = readFileSync(raw);
  const recorder = new DigestRecorder(virtualSize);
  const runOf = recorder.add(from, to - from, false);
  DigestRecorder.hashInto(runOf, from, content.subarray(from, to));
  return recorder.result().encode();
}

export function diskMeta(disk: ServedDisk): Record<string, unknown> {
  return {
    diskId: disk.diskId,
    file: `ignored/${disk.diskId}.qcow2`,
    parentFile: null,
    virtualSize: disk.virtualSize,
    fileBytes: 1,
    changeRef: null,
    digests: { file: 'ignored.digests', sha256: sha256(disk.digests), blocks: Math.ceil(disk.virtualSize / DIGEST_BLOCK_SIZE) },
  };
}

/**
 * A compromised primary hub: the product's own SSH tunnel server (pinned host key, a sync token as the password, only
 * its API reachable) in front of an HTTP server that speaks the sync protocol with whatever metadata the test hands
 * it, and real qemu-nbd TLS exports of real qcow2 files. Nothing in the product knows it is a test.
 */
export class HostilePrimary {
  readonly token = `hostile-sync-token-${randomBytes(8).toString('hex')}`;
  readonly requests: string[] = [];
  /** Connections made to the hosts the answers named instead of the primary: the decoys listen on the export's port there. */
  decoyConnections = 0;
  private readonly decoys: NetServer[] = [];
  private readonly exports = new Map<string, ChildProcess[]>();
  private http!: Server;
  private tunnel!: TunnelServer;
  apiPort = 0;

  constructor(
    private readonly dir: string,
    readonly points: ServedPoint[],
    /** What it calls itself in GET /api/v1/identity. */
    private readonly hubInstance: unknown = 'hostile-primary',
  ) {}

  get sshPort(): number {
    return this.tunnel.port!;
  }

  get fingerprint(): string {
    return this.tunnel.hostKeyFingerprint!;
  }

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    this.http = createServer((req, res) => void this.answer(req, res).catch((e: Error) => send(res, 500, { message: e.message })));
    this.apiPort = await freePort();
    await new Promise<void>((resolve) => this.http.listen(this.apiPort, '127.0.0.1', resolve));
    this.tunnel = new TunnelServer({
      hostKeyFile: join(this.dir, 'ssh_host_ed25519_key'),
      port: 0,
      bind: '127.0.0.1',
      authorize: async () => null,
      authorizePassword: async (_user, password) => (password === this.token ? { agentId: `sync:hostile:${randomUUID()}` } : null),
      apiPort: this.apiPort,
      allowDirect: async (_id, host, port) => host === '127.0.0.1' && port === this.apiPort,
    });
    await this.tunnel.start();
  }

  async close(): Promise<void> {
    for (const id of [...this.exports.keys()]) this.stopExport(id);
    for (const decoy of this.decoys) decoy.close();
    await this.tunnel?.stop();
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    this.requests.push(`${req.method} ${path}`);
    if (req.headers.authorization !== `Bearer ${this.token}`) return send(res, 401, { message: 'no' });
    if (req.method === 'GET' && path === '/api/v1/identity') return send(res, 200, { hubInstance: this.hubInstance, ssh: { port: this.sshPort, hostKeyFingerprint: this.fingerprint } });
    if (req.method === 'GET' && path === '/api/v1/session') return send(res, 200, { actor: 'sync', role: 'sync' });
    if (req.method === 'GET' && path === '/api/v1/sync/restore-points') return send(res, 200, { repositoryId: '7d1c6a52-2f4b-4d0e-8a51-3b7f9c2e1d40', points: this.points.map((p) => p.meta) });
    const pointOf = (id: string) => this.points.find((p) => p.meta.restorePointId === id);
    let m = /^\/api\/v1\/sync\/restore-points\/(.+)\/disks\/(.+)\/digests$/.exec(path);
    if (req.method === 'GET' && m) {
      const disk = pointOf(m[1])?.disks.find((d) => d.diskId === m![2]);
      if (!disk) return send(res, 404, { message: 'no such disk' });
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(disk.digests);
      return;
    }
    m = /^\/api\/v1\/restore-points\/(.+)\/exports$/.exec(path);
    if (req.method === 'POST' && m) {
      const point = pointOf(m[1]);
      if (!point) return send(res, 404, { message: 'no such point' });
      return send(res, 201, await this.openExport(point));
    }
    m = /^\/api\/v1\/restore-point-exports\/(.+)$/.exec(path);
    if (req.method === 'DELETE' && m) {
      if (!this.exports.has(m[1])) return send(res, 404, { message: 'gone' });
      this.stopExport(m[1]);
      return send(res, 200, { closed: true });
    }
    send(res, 404, { message: `nothing at ${req.method} ${path}` });
  }

  /** A real read-only TLS export per disk, as the product's hub makes one (buildQemuNbdArgs), on 127.0.0.1. */
  private async openExport(point: ServedPoint): Promise<unknown> {
    const exportId = randomUUID();
    const children: ChildProcess[] = [];
    this.exports.set(exportId, children);
    const disks = [];
    for (const disk of point.disks) {
      const port = await freePort();
      const psk = { identity: `sync-${randomBytes(4).toString('hex')}`, key: randomBytes(32).toString('hex') };
      const pskDir = join(this.dir, `psk-${exportId}-${disk.diskId}`);
      mkdirSync(pskDir, { recursive: true });
      writeFileSync(join(pskDir, 'keys.psk'), `${psk.identity}:${psk.key}\n`, { mode: 0o600 });
      const exportName = `hostile-${disk.diskId}`;
      const args = buildQemuNbdArgs({ leaseId: exportId, port, file: disk.file, format: 'qcow2', readOnly: true, exportName, tls: { pskDir, bind: '127.0.0.1' } }, join(this.dir, `${exportId}-${disk.diskId}.pid`));
      const child = spawn('qemu-nbd', args, { stdio: 'ignore' });
      children.push(child);
      await listening('127.0.0.1', port);
      const host = point.exportHost ?? '127.0.0.1';
      if (point.exportHost) await this.decoy(point.exportHost, port);
      disks.push({ diskId: disk.diskId, host, port, exportName, uri: `nbds://${host}:${port}/${exportName}`, tls: true, psk });
    }
    return { exportId, restorePointId: point.meta.restorePointId, disks };
  }

  private async decoy(host: string, port: number): Promise<void> {
    const server = createNetServer((socket) => {
      this.decoyConnections++;
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
    this.decoys.push(server);
  }

  private stopExport(exportId: string): void {
    for (const child of this.exports.get(exportId) ?? []) child.kill('SIGTERM');
    this.exports.delete(exportId);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

async function listening(host: string, port: number): Promise<void> {
  const until = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`qemu-nbd did not listen on ${host}:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
