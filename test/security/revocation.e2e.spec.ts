import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpGet, IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NOT_FOUND_LINK } from '../../src/auth/download-links';
import { hashToken } from '../../src/auth/token-hash';
import { CLIENT_COMMANDS } from '../../src/cli/client-commands';
import { chainStream, RESTORE_POINT_ADDED } from '../../src/restore-points/chain.events';
import { startPeerHub, startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../support/test-hub';

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** What the brief of this test promises: a revoked token's streams and downloads end within this, on every hub. */
const WITHIN_MS = 1000;

/**
 * Revocation is immediate and total, on a real hub (and a second hub application on the same database, as hubs
 * sharing one database are): what a token left open (download links, downloads under way, live streams) ends when
 * the token is revoked or, for the admin token, rotated.
 */
describe('a revoked token keeps nothing it had open', () => {
  let hub: TestHub;
  let peer: Awaited<ReturnType<typeof startPeerHub>>;
  let base: string;
  let peerBase: string;
  let dir: string;
  const point = { id: 'rp-revocation-1', vm: 'vm-revocation', disk: 'disk0', size: 64 * MiB };
  let adminToken = TEST_ADMIN_TOKEN;

  const call = async (url: string, method: string, token: string, body?: unknown) => {
    const res = await fetch(url, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : null };
  };
  const issue = async (name: string, role: string) => {
    const issued = await call(`${base}/api/v1/tokens`, 'POST', adminToken, { name, role });
    expect(issued.status).toBe(201);
    return issued.body as { tokenId: string; token: string };
  };
  const revoke = async (tokenId: string) => expect((await call(`${base}/api/v1/tokens/${tokenId}`, 'DELETE', adminToken)).status).toBe(204);
  const imagePath = `/api/v1/restore-points/${point.id}/disks/${point.disk}/image?format=raw`;
  const mint = async (token: string, on = base) => {
    const minted = await call(`${on}/api/v1/download-links`, 'POST', token, { path: imagePath });
    expect(minted.status).toBe(201);
    return `${on}${minted.body.url}`;
  };

  /** Opens the live stream and waits for its first message, so the stream is under way before anything is revoked. */
  async function openLive(url: string, token: string): Promise<{ ended: () => Promise<number>; hangUp: () => void }> {
    const abort = new AbortController();
    const res = await fetch(`${url}/api/v1/live`, { headers: { Authorization: `Bearer ${token}` }, signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('event: ready');
    return {
      /** Resolves with when the stream ended (closed or cut), whatever came before. */
      ended: async () => {
        for (;;) {
          const { done } = await reader.read().catch(() => ({ done: true }));
          if (done) return Date.now();
        }
      },
      hangUp: () => abort.abort(),
    };
  }

  beforeAll(async () => {
    hub = await startTestHub();
    peer = await startPeerHub(hub);
    base = await hub.url();
    peerBase = await peer.url();
    dir = mkdtempSync(join(tmpdir(), 'sendense-revocation-'));
    const repositoryId = (await call(`${base}/api/v1/repositories`, 'POST', adminToken, { name: 'revocation-repo', kind: 'local', path: dir })).body.repositoryId;
    // a restore point as a backup records it, with a real 64 MiB qcow2 whose every block holds data
    const file = `${point.vm}/${point.disk}/${point.id}.qcow2`;
    mkdirSync(join(dir, point.vm, point.disk), { recursive: true });
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, file), String(point.size)]);
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a 0 ${point.size}`, join(dir, file)]);
    const recorded = { restorePointId: point.id, vmId: point.vm, repositoryId, backupId: null, type: 'full', parentId: null, createdAt: new Date().toISOString(), disks: [{ diskId: point.disk, file, parentFile: null, virtualSize: point.size, fileBytes: point.size, changeRef: null }] };
    await hub.db.store.append(chainStream(point.vm, repositoryId), [{ type: RESTORE_POINT_ADDED, data: recorded, metadata: { correlationId: randomUUID(), causationId: randomUUID(), actor: 'test', schemaVersion: 1 } }]);
    for (let i = 0; (await call(`${base}/api/v1/restore-points/${point.id}`, 'GET', adminToken)).status !== 200; i++) {
      if (i > 100) throw new Error('the restore point never reached the read model');
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  afterAll(async () => {
    await peer?.close();
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a download link minted before its token was revoked is refused after it, with no bytes, as an unknown link is', async () => {
    const { tokenId, token } = await issue('link-holder', 'operator');
    // while the token is valid, a link serves the whole disk: the refusal below is the revocation's doing
    const served = await fetch(await mint(token));
    expect(served.status).toBe(200);
    expect((await served.arrayBuffer()).byteLength).toBe(point.size);

    const minted = await mint(token);
    await revoke(tokenId);
    const refused = await fetch(minted);
    const text = await refused.text();
    expect(refused.status).toBe(404);
    expect(text).toBe(JSON.stringify(NOT_FOUND_LINK));
    expect(refused.headers.get('content-disposition')).toBeNull();
  });

  it('a download under way is cut off within 1 s of its token being revoked, short of the whole disk', async () => {
    const { tokenId, token } = await issue('slow-reader', 'operator');
    const url = await mint(token);
    // the client reads nothing after the headers: the hub's writes stall, as for a slow client
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      httpGet(url, (r) => {
        r.pause();
        resolve(r);
      }).on('error', reject);
    });
    try {
      expect(res.statusCode).toBe(200);
      expect(Number(res.headers['content-length'])).toBe(point.size);
      await new Promise((r) => setTimeout(r, 300));
      await revoke(tokenId);
      // a second after the revocation the client reads as fast as it can: a hub that had not cut the download off by
      // then would now send the rest of the disk; one that had leaves only what the sockets held
      await new Promise((r) => setTimeout(r, WITHIN_MS));
      let received = 0;
      const ended = new Promise<void>((resolve) => res.once('close', resolve));
      res.on('data', (chunk: Buffer) => (received += chunk.length));
      res.on('error', () => undefined);
      res.resume();
      await ended;
      expect(received).toBeGreaterThan(0);
      expect(received).toBeLessThan(point.size);
    } finally {
      res.destroy();
    }
  });

  it('a live stream of a revoked token is closed within 1 s, on the hub that revoked it and on another hub sharing the database', async () => {
    const { tokenId, token } = await issue('live-viewer', 'viewer');
    const other = await issue('live-viewer-2', 'viewer');
    const here = await openLive(base, token);
    const there = await openLive(peerBase, token);
    const untouched = await openLive(peerBase, other.token);
    const hereEnded = here.ended();
    const thereEnded = there.ended();
    let otherEndedAt = 0;
    void untouched.ended().then((at) => (otherEndedAt = at));
    await revoke(tokenId);
    const revokedAt = Date.now();
    const [hereAt, thereAt] = await Promise.all([hereEnded, thereEnded]);
    expect(hereAt - revokedAt).toBeLessThan(WITHIN_MS);
    expect(thereAt - revokedAt).toBeLessThan(WITHIN_MS);
    // another token's stream goes on, and the revoked token cannot open a new one
    await new Promise((r) => setTimeout(r, 2 * WITHIN_MS));
    expect(otherEndedAt).toBe(0);
    untouched.hangUp();
    expect((await fetch(`${peerBase}/api/v1/live`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  it('after the admin token is rotated (API, then CLI) the old one answers 401 on every hub at once and its streams close; the new one works and admin.token holds it', async () => {
    const viewer = await issue('rotation-viewer', 'viewer');
    expect((await call(`${base}/api/v1/tokens/admin/rotate`, 'POST', viewer.token)).status).toBe(403);
    const stream = await openLive(peerBase, TEST_ADMIN_TOKEN);
    const streamEnded = stream.ended();

    const rotated = await call(`${base}/api/v1/tokens/admin/rotate`, 'POST', TEST_ADMIN_TOKEN);
    const rotatedAt = Date.now();
    expect(rotated.status).toBe(201);
    expect(rotated.body).toEqual({ generation: 1, token: expect.stringMatching(/^sdt_/), file: join(hub.dataDir, 'admin.token') });
    for (const url of [base, peerBase]) {
      expect((await call(`${url}/api/v1/session`, 'GET', TEST_ADMIN_TOKEN)).status).toBe(401);
      expect((await call(`${url}/api/v1/session`, 'GET', rotated.body.token)).body).toEqual({ actor: 'admin', role: 'admin', tenantId: null });
    }
    expect((await streamEnded) - rotatedAt).toBeLessThan(WITHIN_MS);
    expect(readFileSync(join(hub.dataDir, 'admin.token'), 'utf8')).toBe(`${rotated.body.token}\n`);
    // the event records the new token's hash, never the token; the old token's hash is nowhere in it
    const recorded = await call(`${base}/api/v1/audit/streams/admin-token`, 'GET', rotated.body.token);
    expect(recorded.body.events.map((e: { type: string; data: unknown }) => [e.type, e.data])).toEqual([['AdminTokenRotated', { generation: 1, tokenHash: hashToken(rotated.body.token) }]]);
    expect(recorded.text).not.toContain(rotated.body.token);

    // the CLI, as an operator runs it with the current admin token
    const out: string[] = [];
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => (out.push(String(chunk)), true));
    const warn = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await CLIENT_COMMANDS['token rotate-admin']([], { SENDENSE_HUB: peerBase, SENDENSE_TOKEN: rotated.body.token });
    } finally {
      write.mockRestore();
      warn.mockRestore();
    }
    const fromCli = out.join('').trim();
    expect(fromCli).toMatch(/^sdt_[A-Za-z0-9_-]{43}$/);
    adminToken = fromCli;
    for (const url of [base, peerBase]) {
      expect((await call(`${url}/api/v1/session`, 'GET', rotated.body.token)).status).toBe(401);
      expect((await call(`${url}/api/v1/session`, 'GET', fromCli)).status).toBe(200);
    }
    // the hub that performed this rotation (the peer) keeps it in its own admin.token
    expect(readFileSync(join(peer.dataDir, 'admin.token'), 'utf8')).toBe(`${fromCli}\n`);
  });
});
