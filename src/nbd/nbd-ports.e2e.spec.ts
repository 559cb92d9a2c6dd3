import { eventCount, startTestHub, TestHub } from '../../test/support/test-hub';

const RANGE = { SENDENSE_NBD_PORTS: '12100-12200' };

describe('NBD port leases over the API', () => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startTestHub(RANGE);
  });
  afterEach(async () => hub.close());

  const allocate = (jobId: string, diskId: string) => hub.admin(hub.http().post('/api/v1/nbd/ports/allocate')).send({ jobId, diskId });

  it('gives 101 concurrent allocations 101 distinct ports and refuses the 102nd with 409', async () => {
    const results = await Promise.all(Array.from({ length: 101 }, (_, i) => allocate(`job-${i}`, 'disk0')));
    expect(results.map((r) => r.status)).toEqual(Array(101).fill(201));
    const ports = results.map((r) => r.body.port);
    expect(new Set(ports).size).toBe(101);
    expect(ports.every((p) => p >= 12100 && p <= 12200)).toBe(true);
    expect(new Set(results.map((r) => r.body.leaseId)).size).toBe(101);

    const refused = await allocate('job-overflow', 'disk0').expect(409);
    expect(refused.body.message).toBe('NBD port pool exhausted: all 101 ports 12100-12200 are leased');

    const metrics = await hub.admin(hub.http().get('/api/v1/nbd/ports/metrics')).expect(200);
    expect(metrics.body).toEqual({ total: 101, allocated: 101, available: 0, allocationsTotal: 101, releasesTotal: 0 });
    const listed = await hub.admin(hub.http().get('/api/v1/nbd/ports')).expect(200);
    expect(listed.body.map((l: { port: number }) => l.port)).toEqual([...ports].sort((a, b) => a - b));
  });

  it('releases one port, all ports of a job, and says 404 for a port that is not leased', async () => {
    const a = (await allocate('job-a', 'disk0').expect(201)).body;
    const b = (await allocate('job-a', 'disk1').expect(201)).body;
    const c = (await allocate('job-b', 'disk0').expect(201)).body;
    await allocate('job-a', 'disk0').expect(409);

    const one = await hub.admin(hub.http().delete(`/api/v1/nbd/ports/${c.port}`)).expect(200);
    expect(one.body).toEqual({ port: c.port, leaseId: c.leaseId, jobId: 'job-b' });
    await hub.admin(hub.http().delete(`/api/v1/nbd/ports/${c.port}`)).expect(404);

    const job = await hub.admin(hub.http().delete('/api/v1/nbd/ports/job/job-a')).expect(200);
    expect(job.body).toEqual({ released: [a.port, b.port].sort((x, y) => x - y) });
    expect((await hub.admin(hub.http().delete('/api/v1/nbd/ports/job/job-a')).expect(200)).body).toEqual({ released: [] });

    const metrics = await hub.admin(hub.http().get('/api/v1/nbd/ports/metrics')).expect(200);
    expect(metrics.body).toEqual({ total: 101, allocated: 0, available: 101, allocationsTotal: 3, releasesTotal: 3 });
    const audit = await hub.admin(hub.http().get(`/api/v1/audit/streams/nbd-ports-${require('node:os').hostname()}`)).expect(200);
    expect(audit.body.events.map((e: { type: string }) => e.type)).toEqual([
      'NbdPortAllocated',
      'NbdPortAllocated',
      'NbdPortAllocated',
      'NbdPortReleased',
      'NbdPortReleased',
      'NbdPortReleased',
    ]);
    expect(audit.body.events[3].data).toEqual({ port: c.port, jobId: 'job-b', leaseId: c.leaseId, reason: 'released by request' });
  });

  it.each([
    ['post', '/api/v1/nbd/ports/allocate', { jobId: '../x', diskId: 'd' }, 400, /jobId must be/],
    ['post', '/api/v1/nbd/ports/allocate', { jobId: 'j' }, 400, /diskId must be/],
    ['post', '/api/v1/nbd/ports/allocate', { jobId: 'j', diskId: 'd', port: 1 }, 400, /property port should not exist/],
    ['delete', '/api/v1/nbd/ports/80', undefined, 400, /outside the NBD port pool 12100-12200/],
    ['delete', '/api/v1/nbd/ports/abc', undefined, 400, /port must be an integer/],
    ['delete', '/api/v1/nbd/ports/12100.5', undefined, 400, /port must be an integer/],
    ['delete', '/api/v1/nbd/ports/12150', undefined, 404, /port 12150 is not leased/],
    ['delete', '/api/v1/nbd/ports/job/%2e%2e', undefined, 400, /jobId must be/],
  ] as const)('%s %s %j → %i and nothing changes', async (method, path, body, status, message) => {
    await allocate('keep', 'disk0').expect(201);
    const before = await eventCount(hub.db);
    const req = hub.admin(hub.http()[method](path));
    const res = await (body ? req.send(body) : req).expect(status);
    expect(JSON.stringify(res.body.message)).toMatch(message);
    expect(await eventCount(hub.db)).toBe(before);
  });
});
