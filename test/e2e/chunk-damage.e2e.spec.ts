import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MiB } from '../fixtures/vm/sample-vm';
import { BackupLab } from '../support/backup-lab';

/**
 * Damage in a chunk store (bit rot, a bad sector, tampering): a verify reports it as the point's corruption, as it
 * does for a qcow2 chain, instead of failing on the chunk that no longer opens. A real hub and agent, an encrypted
 * chunks repository on real files, one byte of a stored chunk flipped on disk.
 */
describe('chunks repository: a damaged chunk (real hub + agent)', () => {
  const lab = new BackupLab({ DATABASE_URL: '' });
  let repositoryId = '';
  let pointId = '';

  beforeAll(async () => {
    await lab.start([16 * MiB, 16 * MiB], [0, 0]);
    const keyFile = join(lab.dir, 'store.key');
    writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const repo = await lab.api('POST', '/api/v1/repositories', { name: 'store', kind: 'local', path: join(lab.dir, 'store'), layout: 'chunks', encryption: { keyFile } });
    expect(repo.status).toBe(201);
    repositoryId = repo.body.repositoryId;
    const started = await lab.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId, type: 'full' });
    const job = await lab.waitForJob(started.body.jobId, 120_000);
    expect(job.status).toBe('completed');
    pointId = job.restorePointId;
  }, 180_000);
  afterAll(() => lab.close(), 60_000);

  it('is reported by verify as the corruption of the point that reads it, and the point is marked corrupt', async () => {
    const clean = await lab.api('POST', `/api/v1/restore-points/${pointId}/verify`);
    expect(clean).toMatchObject({ status: 201, body: { content: { ok: true, digests: 'all' } } });

    const packs = join(lab.dir, 'store', 'chunks', 'packs');
    const pack = join(packs, readdirSync(packs).find((name) => name.endsWith('.pack'))!);
    // a byte inside the first record's sealed body (past its nonce): that chunk no longer opens under the key
    const fd = openSync(pack, 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, 40);
    writeSync(fd, Buffer.of(byte[0] ^ 0x01), 0, 1, 40);
    closeSync(fd);
    expect(statSync(pack).size).toBeGreaterThan(40);

    const damaged = await lab.api('POST', `/api/v1/restore-points/${pointId}/verify`);
    expect(damaged.status).toBe(201);
    expect(damaged.body.content.ok).toBe(false);
    // one block, and only that one: the others of its pack and its request still read and match
    expect(damaged.body.content.mismatches).toEqual([expect.objectContaining({ restorePointId: pointId, length: 65536, actual: expect.stringMatching(/^cannot be read: /) })]);
    expect(damaged.body.content.problems).toEqual([expect.stringMatching(new RegExp(`^disk\\d: block at offset \\d+ \\(65536 bytes\\) of ${pointId} cannot be read: chunk [0-9a-f]{64} does not open with this repository's key`))]);
    const point = (await lab.api('GET', `/api/v1/restore-points/${pointId}`)).body;
    expect(point).toMatchObject({ integrity: 'corrupt', damaged: [expect.objectContaining({ offset: damaged.body.content.mismatches[0].offset, length: 65536 })] });
  });
});
