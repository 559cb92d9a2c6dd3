import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, TestDatabase } from '../../../test/support/test-database';
import { DomainError } from '../../eventing/domain-error';
import { HubSecrets } from '../../database/hub-secrets';
import { RemoteTokens } from './remote-tokens';

const R1 = '0a0a0a0a-1111-4222-8333-444455556666';
const R2 = '0b0b0b0b-1111-4222-8333-444455556666';

/** Two hub processes of one database, each with a data dir of its own (real PostgreSQL, migrated). */
describe("a remote's sync token (real PostgreSQL): stored where every hub process of the database reads it", () => {
  let db: TestDatabase;
  const dirs: string[] = [];
  const hub = (files: Record<string, string> = {}) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sendense-remote-tokens-'));
    dirs.push(dataDir);
    mkdirSync(join(dataDir, 'remotes'));
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dataDir, 'remotes', name), content, { mode: 0o600 });
    return new RemoteTokens(new HubSecrets(db.dataSource), { dataDir } as never);
  };
  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    await db.drop();
  });

  it('a token one hub stores, another reads; a removed one is a clear conflict, naming what to do', async () => {
    const a = hub();
    const b = hub();
    await a.store(R1, 'sd_sync_secret');
    await expect(b.token(R1)).resolves.toBe('sd_sync_secret');
    await a.remove(R1);
    const missing = await b.token(R1).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(DomainError);
    expect(missing).toMatchObject({ kind: 'conflict', message: expect.stringContaining(`no hub process of this database holds the token of remote ${R1} (a hub before this version kept it in its own data dir: start that hub, or give a token the remote issued with PUT /api/v1/remotes/${R1}/token)`) });
    // a replacement says what it replaced, and every hub reads the new one
    await expect(a.replace(R1, 'sd_sync_second')).resolves.toBeNull();
    await expect(b.replace(R1, 'sd_sync_third')).resolves.toBe('sd_sync_second');
    await expect(a.token(R1)).resolves.toBe('sd_sync_third');
    // undoing a replacement puts the one before back, but not over a replacement made since
    await a.undoReplace(R1, 'sd_sync_third', 'sd_sync_second');
    await expect(b.token(R1)).resolves.toBe('sd_sync_second');
    await b.undoReplace(R1, 'sd_sync_third', null);
    await expect(b.token(R1)).resolves.toBe('sd_sync_second');
  });

  it("copies the token files an older hub kept in its data dir into the table at its start, once, and leaves other files alone", async () => {
    const old = hub({ [`${R1}.token`]: 'sd_from_file\n', [`${R2}.token.tmp`]: 'half-written', 'notes.txt': 'x' });
    // a token file that cannot be read (here a directory by that name) is left, and the start goes on
    mkdirSync(join(dirs[dirs.length - 1], 'remotes', '0c0c0c0c-1111-4222-8333-444455556666.token'));
    await old.onApplicationBootstrap();
    await expect(hub().token(R1)).resolves.toBe('sd_from_file');
    await expect(hub().token(R2)).rejects.toThrow(/no hub process/);
    // a token stored since is not overwritten by the file at the next start
    await db.dataSource.query(`UPDATE hub_secrets SET secret = 'sd_newer' WHERE id = $1`, [R1]);
    await old.onApplicationBootstrap();
    await expect(hub().token(R1)).resolves.toBe('sd_newer');
  });
});
