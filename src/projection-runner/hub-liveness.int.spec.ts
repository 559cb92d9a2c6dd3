import { Client } from 'pg';
import { relayTo } from '../../test/support/db-relay';
import { createTestDatabase, TestDatabase } from '../../test/support/test-database';
import { DbConnection, pgClientConfig } from '../database/db-connection';
import { HubLiveness, LivenessOptions, OwnersGone } from './hub-liveness';

const A = '0a0a0a0a-1111-4222-8333-444455556666';
const B = '0b0b0b0b-1111-4222-8333-444455556666';
const C = '0c0c0c0c-2222-4222-8333-444455556666';

describe('HubLiveness (real PostgreSQL): which hub processes are alive, as the database sees them', () => {
  let db: TestDatabase;
  const started: HubLiveness[] = [];
  const hub = async (instance: string, { via, goneHubAfterMs, options }: { via?: DbConnection; goneHubAfterMs?: number; options?: LivenessOptions } = {}) => {
    const liveness = new HubLiveness(via ?? db.connection, instance, goneHubAfterMs === undefined ? undefined : { goneHubAfterMs }, options);
    started.push(liveness);
    await liveness.onModuleInit();
    return liveness;
  };
  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    for (const h of started.splice(0)) await h.onApplicationShutdown();
    await db.drop();
  });

  it('a process is alive while its session lives, gone once it stopped, and alive again when it starts again; asking changes nothing', async () => {
    const a = await hub(A);
    const b = await hub(B);
    expect([await b.gone(A), await a.gone(B), await a.gone(A)]).toEqual([false, false, false]);
    // asking twice takes nothing from the other: it is still held
    expect([await b.gone(A), await b.gone(A)]).toEqual([false, false]);
    await a.onApplicationShutdown();
    expect(await b.gone(A)).toBe(true);
    expect(await b.gone(A)).toBe(true);
    // a process never seen is gone too: the takeover waits for a second sweep, and acts only on work that names it
    expect(await b.gone('0c0c0c0c-1111-4222-8333-444455556666')).toBe(true);
    await hub(A);
    expect(await b.gone(A)).toBe(false);
  });

  it("a process whose session the server ended takes its lock again within seconds: it is never gone at two sweeps", async () => {
    const a = await hub(A);
    const b = await hub(B);
    const admin = new Client(pgClientConfig(db.connection));
    await admin.connect();
    try {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sendense-liveness' AND datname = current_database() AND pid <> pg_backend_pid()`);
    } finally {
      await admin.end();
    }
    // both sessions were ended; each takes its lock again at its next look (every 5 s)
    const owners = new OwnersGone(b, 1_000);
    await owners.sweep([A]);
    await new Promise((r) => setTimeout(r, 6_000));
    expect([...(await owners.sweep([A]))]).toEqual([]);
    expect(await b.gone(A)).toBe(false);
    expect(await a.gone(B)).toBe(false);
  }, 20_000);

  it('a process cut off from the database fences itself once half of the time after which others take its work over has passed since it last held its lock; a blip fences nothing', async () => {
    const relay = await relayTo(db.connection);
    const fenced: { reason: string; at: number }[] = [];
    const options = { reholdMs: 250, fence: (reason: string) => fenced.push({ reason, at: Date.now() }) };
    const a = await hub(A, { via: relay.connection, goneHubAfterMs: 4_000, options });
    const b = await hub(B);
    // a session the server ended, taken again at the next look: no fence
    const blipFenced: string[] = [];
    await hub(C, { goneHubAfterMs: 1_000, options: { reholdMs: 250, fence: (reason) => blipFenced.push(reason) } });
    const admin = new Client(pgClientConfig(db.connection));
    await admin.connect();
    try {
      const ended = await admin.query(`SELECT pg_terminate_backend(pid) AS ended FROM pg_locks WHERE locktype = 'advisory' AND classid = 24212 AND objid::bigint = (hashtext($1)::bigint & 4294967295)`, [C]);
      expect(ended.rows).toEqual([{ ended: true }]);
    } finally {
      await admin.end();
    }
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await b.gone(C)).toBe(false);
    expect(blipFenced).toEqual([]);

    const cutAt = Date.now();
    await relay.cut();
    const owners = new OwnersGone(b, 4_000);
    for (const deadline = Date.now() + 10_000; fenced.length === 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
    expect(fenced).toEqual([{ reason: expect.stringMatching(/^this hub process has not held its liveness lock for \d+ s \(the database unreachable or refusing it\): other hubs take its work over after SENDENSE_GONE_HUB_AFTER_S, so it stops now/), at: expect.any(Number) }]);
    // fenced after half of the 4 s (at the second look in a row that missed the lock), before the other hub could find it gone for good
    expect(fenced[0].at - cutAt).toBeGreaterThanOrEqual(1_500);
    expect(fenced[0].at - cutAt).toBeLessThan(4_000);
    expect(await b.gone(A)).toBe(true);
    expect([...(await owners.sweep([A]))]).toEqual([]);
    // once fenced it looks no more: fenced once
    await new Promise((r) => setTimeout(r, 600));
    expect(fenced).toHaveLength(1);
    expect(blipFenced).toEqual([]);
    await a.onApplicationShutdown();
  }, 30_000);
});

describe('OwnersGone', () => {
  it('confirms an owner gone only once every look for `afterMs` found it gone; one look that found it alive starts again', async () => {
    const gone = new Set<string>();
    let now = 0;
    const owners = new OwnersGone({ gone: async (o: string) => gone.has(o) }, 60_000, () => now);
    const sweep = async (...ids: string[]) => [...(await owners.sweep(ids))];
    gone.add('x');
    expect(await sweep('x', 'y')).toEqual([]);
    now = 59_999;
    expect(await sweep('x', 'y')).toEqual([]);
    now = 60_000;
    expect(await sweep('x', 'y')).toEqual(['x']);
    // back for one look (a restart): the count starts again
    gone.delete('x');
    now = 61_000;
    expect(await sweep('x')).toEqual([]);
    gone.add('x');
    gone.add('y');
    now = 62_000;
    expect(await sweep('x', 'y', 'x')).toEqual([]);
    now = 122_000;
    expect(await sweep('x', 'y')).toEqual(['x', 'y']);
    // an owner no look asks about is forgotten: asked again, it starts again
    now = 123_000;
    expect(await sweep('y')).toEqual(['y']);
    now = 124_000;
    expect(await sweep('x', 'y')).toEqual(['y']);
  });

  it('takes over, one after another, the pieces of work whose owner is gone for good, and stops taking when told', async () => {
    let now = 0;
    const owners = new OwnersGone({ gone: async (o: string) => o !== 'alive' }, 1_000, () => now);
    const work = [{ id: 1, owner: 'gone' }, { id: 2, owner: 'alive' }, { id: 3, owner: 'gone' }, { id: 4, owner: 'other' }];
    const taken: string[] = [];
    const take = async (piece: { id: number }, owner: string) => void taken.push(`${piece.id}:${owner}`);
    await owners.takeOver(work, (w) => w.owner, take, () => false);
    expect(taken).toEqual([]);
    now = 1_000;
    await owners.takeOver(work, (w) => w.owner, take, () => false);
    expect(taken).toEqual(['1:gone', '3:gone', '4:other']);
    taken.length = 0;
    await owners.takeOver(work, (w) => w.owner, take, () => taken.length === 1);
    expect(taken).toEqual(['1:gone']);
    // an owner that comes back while its first piece is taken over keeps the rest (it takes them up itself)
    taken.length = 0;
    const back = new Set<string>();
    const comesBack = new OwnersGone({ gone: async (o: string) => o !== 'alive' && !back.has(o) }, 0, () => now);
    await comesBack.takeOver(work, (w) => w.owner, async (piece, owner) => {
      await take(piece, owner);
      back.add('gone');
    }, () => false);
    expect(taken).toEqual(['1:gone', '4:other']);
  });
});
