import { startTestHub, TestHub } from '../../test/support/test-hub';

const encode = (text: string) => Buffer.from(text).toString('base64url');
const UUID = '6f1c1c44-1111-4e4e-9a9a-0123456789ab';

/**
 * Query strings that passed validation and then failed in the hub's own code or in PostgreSQL (a 500 each, found by
 * reading every route's input as an attacker would): each is a 400 now, and the forms the hub documents still answer.
 */
describe('query strings the hub cannot use are 400s, not 500s', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({ SENDENSE_NBD_PORTS: '12710-12712' });
  }, 60_000);
  afterAll(() => hub.close());

  const get = async (path: string) => {
    const res = await hub.admin(hub.http().get(path));
    return { status: res.status, message: res.body.message };
  };

  it.each([
    ['a cron naming a member of every object', '/api/v1/schedule-preview?cron=constructor&timezone=UTC', /must have 5 fields/],
    ['a report over a year and a month alone', '/api/v1/reports/jobs?from=2026&to=2026-12', /from must be an ISO 8601 date or time/],
    ['a report from a week date', '/api/v1/reports/jobs?from=2026-W01&to=2026-11-15', /from must be an ISO 8601 date or time/],
    ['a report in a zone node knows and PostgreSQL does not', '/api/v1/reports/jobs?from=2026-11-01&to=2026-11-15&timezone=AET', /timezone "AET" is not one the database knows/],
    ['a cursor whose id is 36 dashes', `/api/v1/backups?cursor=${encode(`2026-01-01T00:00:00.000Z|${'-'.repeat(36)}`)}`, /cursor is malformed/],
    ['a cursor whose time is a year', `/api/v1/backups?cursor=${encode(`2026|${UUID}`)}`, /cursor is malformed/],
    ['audit events from a week date', '/api/v1/audit/events?from=2026-W01', /from must be an ISO 8601 time/],
    ['audit events after a position past bigint', '/api/v1/audit/events?after=00000000000000000000:99999999999999999999', /after must be an event position/],
    ['a stream from a revision past bigint', '/api/v1/audit/streams/x?fromRevision=1e19', /fromRevision must not be greater than/],
    ['the protection report at a week date', '/api/v1/reports/protection?at=2026-W01', /at must be an ISO 8601 timestamp/],
    ['the live stream after a position past bigint', '/api/v1/live?after=99999999999999999999:00000000000000000000', /after must be an event position/],
  ])('%s', async (_what, path, message) => {
    const answer = await get(path);
    expect(answer.status).toBe(400);
    expect(String(answer.message)).toMatch(message);
  });

  it('answers the forms the hub documents', async () => {
    expect((await get('/api/v1/schedule-preview?cron=@daily&timezone=UTC')).status).toBe(200);
    expect((await get('/api/v1/reports/jobs?from=2026-11-01&to=2026-11-15T00:00:00Z')).status).toBe(200);
    expect((await get(`/api/v1/backups?cursor=${encode(`2026-01-01T00:00:00.000Z|${UUID}`)}`)).status).toBe(200);
    expect((await get('/api/v1/audit/events?from=2026-11-01T00:00:00%2B01:00&after=00000000000000000001:00000000000000000001')).status).toBe(200);
    expect((await get('/api/v1/audit/streams/x?fromRevision=3')).status).toBe(200);
    expect((await get('/api/v1/reports/protection?at=2026-11-01T12:00:00Z')).status).toBe(200);
  });
});
