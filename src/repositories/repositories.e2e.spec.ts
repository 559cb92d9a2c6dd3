import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, truncateSync, renameSync, existsSync, statSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { contentMismatches } from '../../test/fixtures/qcow2/chain-builder';
import { buildRepositoryChain, RepositoryChain } from '../../test/fixtures/qcow2/repository-chain';
import { eventCount, startTestHub, TEST_ADMIN_TOKEN, TestHub } from '../../test/support/test-hub';
import { ProjectionsService } from '../projection-runner/projections.service';
import { SpaceCheck } from '../restore-points/space-check';
import { readCmdline } from '../process/proc';
import { configurationFileOf, writeConfigurationFile } from './qcow2/configuration-files';
import { manifestPath, readManifest, writeManifest } from './qcow2/manifest';

const run = promisify(execFile);
const readCmdlineOf = (pid: number) => readCmdline(pid) ?? [];

describe('repositories and restore-point chains (real qemu-img, real data)', () => {
  let hub: TestHub;
  let dir: string;
  let root: string;
  let chain: RepositoryChain;
  let repositoryId: string;

  beforeEach(async () => {
    hub = await startTestHub({ SENDENSE_NBD_PORTS: '12800-12809' });
    dir = mkdtempSync(join(tmpdir(), 'sendense-repo-e2e-'));
    chmodSync(dir, 0o755);
    root = join(dir, 'repo-main');
    mkdirSync(root);
    chain = await buildRepositoryChain(root, join(dir, 'staging'));
    const res = await hub.admin(hub.http().post('/api/v1/repositories')).send({ name: 'main', kind: 'local', path: root }).expect(201);
    repositoryId = res.body.repositoryId;
  });
  afterEach(async () => {
    await hub.close();
    // points of an immutable repository keep the attribute until cleared
    await run('chattr', ['-R', '-i', dir]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  const rescan = () => hub.admin(hub.http().post(`/api/v1/repositories/${repositoryId}/rescan`)).expect(201);
  const listChain = async (h: TestHub = hub, repo = repositoryId) => (await h.admin(h.http().get(`/api/v1/vms/vm1/restore-points?repositoryId=${repo}`)).expect(200)).body;
  const expectContent = async (points: string[]) => {
    const pairs = points.flatMap((p) => ['disk0', 'disk1'].map((d) => [chain.file(p, d), chain.references[p][d]] as const));
    expect(await contentMismatches(pairs)).toEqual([]);
  };

  it('seals the points a rescan finds in an immutable repository, and refuses their delete until the lock expires', async () => {
    const lockedRoot = join(dir, 'repo-locked');
    mkdirSync(lockedRoot);
    const lockedChain = await buildRepositoryChain(lockedRoot, join(dir, 'staging-locked'));
    const registered = await hub.admin(hub.http().post('/api/v1/repositories')).send({ name: 'locked', kind: 'local', path: lockedRoot, immutableDays: 3650 }).expect(201);
    expect(registered.body).toMatchObject({ name: 'locked', immutableDays: 3650 });
    const report = await hub.admin(hub.http().post(`/api/v1/repositories/${registered.body.repositoryId}/rescan`)).expect(201);
    expect(report.body.added).toEqual(lockedChain.points);
    for (const point of lockedChain.points) {
      const file = lockedChain.file(point, 'disk0');
      expect({ file, attributes: (await run('lsattr', ['-d', file])).stdout.split(/\s+/)[0] }).toEqual({ file, attributes: expect.stringContaining('i') });
    }
    const newest = lockedChain.points.at(-1)!;
    const refused = await hub.admin(hub.http().delete(`/api/v1/restore-points/${newest}`)).expect(409);
    expect(refused.body.message).toMatch(new RegExp(`^restore point ${newest} is immutable until 2035-12-\\d\\dT.*: repository locked keeps its restore points immutable for 3650 day\\(s\\) after they were written$`));
    expect(existsSync(lockedChain.file(newest, 'disk0'))).toBe(true);
  });

  it('registers a local repository with capacity from statfs', async () => {
    const res = await hub.admin(hub.http().get(`/api/v1/repositories/${repositoryId}`)).expect(200);
    expect(res.body).toMatchObject({ repositoryId, name: 'main', kind: 'local', path: root, lowSpace: false });
    expect(res.body.totalBytes).toBeGreaterThan(0);
    expect(res.body.freeBytes).toBeGreaterThan(0);
    expect(res.body.usedBytes).toBeGreaterThan(0);
    expect((await hub.admin(hub.http().get('/api/v1/repositories')).expect(200)).body.map((r: { name: string }) => r.name)).toEqual(['main']);
  });

  it("the space of its points: pointsBytes and the usage route's newest sample are the sum of its points' disks' files, through a merge and a middle delete; bad days are 400, an unknown repository 404", async () => {
    await rescan();
    type Disk = { file: string; fileBytes: number };
    const space = async () => {
      // the usage read model trails the restore points' by the moment it takes to apply the same events
      await hub.app.get(ProjectionsService).waitForCaughtUp('repository-usage');
      const disks: Disk[] = (await listChain()).flatMap((p: { disks: Disk[] }) => p.disks);
      const details = (await hub.admin(hub.http().get(`/api/v1/repositories/${repositoryId}`)).expect(200)).body;
      const listed = (await hub.admin(hub.http().get('/api/v1/repositories')).expect(200)).body[0];
      const usage = (await hub.admin(hub.http().get(`/api/v1/repositories/${repositoryId}/usage`)).expect(200)).body;
      return {
        recorded: disks.reduce((n, d) => n + d.fileBytes, 0),
        onDisk: disks.reduce((n, d) => n + statSync(join(root, d.file)).size, 0),
        details: details.pointsBytes,
        listed: listed.pointsBytes,
        usage: usage.pointsBytes,
        newestSample: usage.samples.at(-1)?.usedBytes,
        body: usage,
      };
    };
    const check = async () => {
      const s = await space();
      expect(s.recorded).toBeGreaterThan(0);
      expect({ onDisk: s.onDisk, details: s.details, listed: s.listed, usage: s.usage, newestSample: s.newestSample }).toEqual({ onDisk: s.recorded, details: s.recorded, listed: s.recorded, usage: s.recorded, newestSample: s.recorded });
      return s;
    };

    const rescanned = await check();
    expect(rescanned.body).toEqual({ repositoryId, samples: expect.any(Array), pointsBytes: rescanned.recorded, freeBytes: expect.any(Number), growthBytesPerDay: null, estimatedFullAt: null });
    expect(rescanned.body.samples.every((x: { at: string; usedBytes: number }) => Date.now() - Date.parse(x.at) < 600_000)).toBe(true);
    // less than an hour of history is no trend
    expect((await hub.admin(hub.http().get(`/api/v1/repositories/${repositoryId}`)).expect(200)).body).toMatchObject({ growthBytesPerDay: null, estimatedFullAt: null });

    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-1')).expect(200);
    const merged = await check();
    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-3')).expect(200);
    const middle = await check();
    expect(middle.recorded).not.toBe(merged.recorded);
    expect((await hub.admin(hub.http().get(`/api/v1/repositories/${repositoryId}/usage?days=365`)).expect(200)).body.samples.at(-1).usedBytes).toBe(middle.recorded);

    const usage = (query: string) => hub.admin(hub.http().get(`/api/v1/repositories/${repositoryId}/usage${query}`));
    for (const [query, message] of [
      ['?days=0', /days must be at least 1/],
      ['?days=366', /days must be at most 365/],
      ['?days=abc', /days must be a whole number of days/],
      ['?days=1.5', /days must be a whole number of days/],
      ['?since=2025-01-01', /property since should not exist/],
    ] as const) {
      expect(JSON.stringify((await usage(query).expect(400)).body.message)).toMatch(message);
    }
    const unknown = await hub.admin(hub.http().get('/api/v1/repositories/7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11/usage')).expect(404);
    expect(unknown.body.message).toBe('repository 7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11 does not exist');
    expect(JSON.stringify((await hub.admin(hub.http().get('/api/v1/repositories/not-a-uuid/usage')).expect(400)).body.message)).toMatch(/repositoryId must be a uuid/);
  });

  it('rescans manifests into a chain, deletes the oldest then a middle point, and every remaining point keeps its exact content', async () => {
    const report = await rescan();
    expect(report.body).toMatchObject({ vms: ['vm1'], added: chain.points, broken: [], invalidManifests: [] });
    expect((await listChain()).map((p: { restorePointId: string; type: string; parentId: string }) => [p.restorePointId, p.type, p.parentId])).toEqual([
      ['rp-1', 'full', null],
      ['rp-2', 'incremental', 'rp-1'],
      ['rp-3', 'incremental', 'rp-2'],
      ['rp-4', 'incremental', 'rp-3'],
    ]);

    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-1')).expect(200);
    expect(existsSync(chain.file('rp-1', 'disk0'))).toBe(false);
    await expectContent(['rp-2', 'rp-3', 'rp-4']);
    const rp2 = (await hub.admin(hub.http().get('/api/v1/restore-points/rp-2')).expect(200)).body;
    expect(rp2).toMatchObject({ type: 'full', parentId: null });
    expect(rp2.disks.map((d: { parentFile: string | null }) => d.parentFile)).toEqual([null, null]);

    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-3')).expect(200);
    await expectContent(['rp-2', 'rp-4']);
    expect((await listChain()).map((p: { restorePointId: string; parentId: string }) => [p.restorePointId, p.parentId])).toEqual([
      ['rp-2', null],
      ['rp-4', 'rp-2'],
    ]);
    const verified = (await hub.admin(hub.http().post('/api/v1/restore-points/rp-4/verify')).expect(201)).body;
    expect(verified.verification).toMatchObject({ ok: true, problems: [] });

    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-4')).expect(200);
    await expectContent(['rp-2']);

    const audit = (await hub.admin(hub.http().get(`/api/v1/audit/streams/chain-vm1-${repositoryId}`)).expect(200)).body.events.map((e: { type: string }) => e.type);
    expect(audit.filter((t: string) => t !== 'RestorePointAdded')).toEqual([
      'RestorePointDeleteStarted',
      'RestorePointMerged',
      'RestorePointDeleteStarted',
      'RestorePointDeleted',
      'RestorePointVerified',
      'RestorePointDeleteStarted',
      'RestorePointDeleted',
    ]);
  });

  it('a copy of a repository registered beside it and rescanned records none of its points again, and every chain goes on being read', async () => {
    await rescan();
    const copy = join(dir, 'repo-copy');
    await run('cp', ['-a', root, copy]);
    const registered = await hub.admin(hub.http().post('/api/v1/repositories')).send({ name: 'copy', kind: 'local', path: copy }).expect(201);
    const report = (await hub.admin(hub.http().post(`/api/v1/repositories/${registered.body.repositoryId}/rescan`)).expect(201)).body;
    expect(report).toMatchObject({ vms: ['vm1'], added: [], broken: [] });
    expect(report.duplicates).toEqual(chain.points.map((restorePointId) => ({ restorePointId, reason: `held already in repository ${repositoryId} as a point of VM vm1` })));
    expect(await listChain(hub, registered.body.repositoryId)).toEqual([]);
    // the read model was not stopped by a second point of one id: a delete in the first repository still shows
    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-4')).expect(200);
    expect((await listChain()).map((p: { restorePointId: string }) => p.restorePointId)).toEqual(['rp-1', 'rp-2', 'rp-3']);
  });

  it('a repository and its copy rescanned at the same moment record each point once: one rescan records the chain, the other finds every point held, and the read model goes on', async () => {
    const copy = join(dir, 'repo-copy-race');
    await run('cp', ['-a', root, copy]);
    const registered = await hub.admin(hub.http().post('/api/v1/repositories')).send({ name: 'copy-race', kind: 'local', path: copy }).expect(201);
    const copyId = registered.body.repositoryId;
    const [first, second] = (await Promise.all([rescan(), hub.admin(hub.http().post(`/api/v1/repositories/${copyId}/rescan`)).expect(201)])).map((r) => r.body);
    const [winner, loser] = first.added.length > 0 ? [first, second] : [second, first];
    const winnerId = winner === first ? repositoryId : copyId;
    expect(winner).toMatchObject({ added: chain.points, duplicates: [], broken: [] });
    expect(loser).toMatchObject({ added: [], alreadyKnown: [], broken: [] });
    expect(loser.duplicates).toEqual(chain.points.map((restorePointId) => ({ restorePointId, reason: `held already in repository ${winnerId} as a point of VM vm1` })));
    // the read model holds each point once and is not stopped: a delete after it still shows
    expect((await listChain(hub, winnerId)).map((p: { restorePointId: string }) => p.restorePointId)).toEqual(chain.points);
    expect(await listChain(hub, winnerId === repositoryId ? copyId : repositoryId)).toEqual([]);
    await hub.admin(hub.http().delete(`/api/v1/restore-points/${chain.points.at(-1)}`)).expect(200);
    expect((await listChain(hub, winnerId)).map((p: { restorePointId: string }) => p.restorePointId)).toEqual(chain.points.slice(0, -1));
  });

  it('one DELETE of a restore point is one audit story: the request correlation id on every event, each caused by a command or an earlier event of the story', async () => {
    await rescan();
    const story = async (correlationId: string) => (await hub.admin(hub.http().get(`/api/v1/audit/correlations/${correlationId}`)).expect(200)).body.events;
    const causedInside = (events: { eventId: string; metadata: { causationId: string; commandId: string } }[]) => {
      const earlier = new Set<string>();
      return events.map((e) => {
        const inside = e.metadata.causationId === e.metadata.commandId || earlier.has(e.metadata.causationId);
        earlier.add(e.eventId).add(e.metadata.commandId);
        return inside;
      });
    };

    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-1')).set('X-Correlation-Id', 'delete-rp-1').expect(200);
    const merge = await story('delete-rp-1');
    expect(merge.map((e: { type: string; streamId: string }) => [e.type, e.streamId])).toEqual([
      ['RestorePointDeleteStarted', `chain-vm1-${repositoryId}`],
      ['RestorePointMerged', `chain-vm1-${repositoryId}`],
    ]);
    expect(merge.map((e: { metadata: { correlationId: string } }) => e.metadata.correlationId)).toEqual(['delete-rp-1', 'delete-rp-1']);
    expect(merge[0].metadata.actor).toBe('admin');
    expect(merge[0].metadata.causationId).toBe(merge[0].metadata.commandId);
    expect(merge[1].metadata.causationId).toBe(merge[0].eventId);
    expect(merge[1].metadata.commandId).not.toBe(merge[0].metadata.commandId);
    expect(causedInside(merge)).toEqual([true, true]);

    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-3')).set('X-Correlation-Id', 'delete-rp-3').expect(200);
    const middle = await story('delete-rp-3');
    expect(middle.map((e: { type: string }) => e.type)).toEqual(['RestorePointDeleteStarted', 'RestorePointDeleted']);
    expect(middle[1].metadata.causationId).toBe(middle[0].eventId);
    expect(causedInside(middle)).toEqual([true, true]);
  });

  it('verify catches a truncated file and a broken backing path, and marks the chain broken', async () => {
    await rescan();
    expect((await hub.admin(hub.http().post('/api/v1/restore-points/rp-4/verify')).expect(201)).body.verification.ok).toBe(true);

    truncateSync(chain.file('rp-4', 'disk0'), 200_000);
    const truncated = (await hub.admin(hub.http().post('/api/v1/restore-points/rp-4/verify')).expect(201)).body;
    expect(truncated.verification.ok).toBe(false);
    expect(truncated.verification.problems.join('\n')).toMatch(/disk0: .*(truncat|shorter)/i);

    renameSync(chain.file('rp-2', 'disk1'), chain.file('rp-2', 'disk1') + '.moved');
    const broken = (await hub.admin(hub.http().post('/api/v1/restore-points/rp-3/verify')).expect(201)).body;
    expect(broken.verification.ok).toBe(false);
    expect(broken.verification.problems.join('\n')).toMatch(/disk1: .*rp-2/);

    const events = (await hub.admin(hub.http().get(`/api/v1/audit/streams/chain-vm1-${repositoryId}`)).expect(200)).body.events;
    expect(events.filter((e: { type: string }) => e.type === 'ChainBroken')).toHaveLength(2);
  });

  it("a rescan into a fresh database reproduces the same chain, each point with its VM configuration; a deleted point's configuration goes with it", async () => {
    // each point holds the configuration its backup recorded, as the libvirt source uploads it
    for (const point of chain.points) {
      const manifest = await readManifest(manifestPath(root, 'vm1', point));
      const configuration = await writeConfigurationFile(root, configurationFileOf('vm1', point), {
        schemaVersion: 1,
        kind: 'libvirt',
        domainXml: `<domain type='kvm'><name>vm1-at-${point}</name></domain>`,
        nvram: point === 'rp-4' ? Buffer.from('vars').toString('base64') : null,
        tpm: null,
        capturedAt: manifest.createdAt,
      });
      await writeManifest(root, { ...manifest, configuration });
    }
    await rescan();
    expect((await hub.admin(hub.http().get('/api/v1/restore-points/rp-4')).expect(200)).body.configuration).toEqual({ domainXml: true, nvram: true, tpm: false });
    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-2')).expect(200);
    expect(existsSync(join(root, configurationFileOf('vm1', 'rp-2')))).toBe(false);
    expect(existsSync(join(root, configurationFileOf('vm1', 'rp-3')))).toBe(true);
    const original = await listChain();

    const fresh = await startTestHub({ SENDENSE_NBD_PORTS: '12810-12819' });
    try {
      const repo = (await fresh.admin(fresh.http().post('/api/v1/repositories')).send({ name: 'reattached', kind: 'local', path: root }).expect(201)).body.repositoryId;
      const report = (await fresh.admin(fresh.http().post(`/api/v1/repositories/${repo}/rescan`)).expect(201)).body;
      expect(report.added).toEqual(['rp-1', 'rp-3', 'rp-4']);
      const strip = (points: { restorePointId: string; type: string; parentId: string | null; disks: unknown[]; createdAt: string; configuration: unknown }[]) =>
        points.map(({ restorePointId, type, parentId, disks, createdAt, configuration }) => ({ restorePointId, type, parentId, disks, createdAt, configuration }));
      expect(strip(await listChain(fresh, repo))).toEqual(strip(original));
      expect((await listChain(fresh, repo)).map((p: { configuration: unknown }) => p.configuration)).toEqual([
        { domainXml: true, nvram: false, tpm: false },
        { domainXml: true, nvram: false, tpm: false },
        { domainXml: true, nvram: true, tpm: false },
      ]);
      expect((await fresh.admin(fresh.http().post(`/api/v1/repositories/${repo}/rescan`)).expect(201)).body).toMatchObject({ added: [], alreadyKnown: ['rp-1', 'rp-3', 'rp-4'] });
    } finally {
      await fresh.close();
    }
  });

  it('refuses to delete a point while it or a point above it is exported, and the repository while it holds points', async () => {
    await rescan();
    const exported = await hub.admin(hub.http().post('/api/v1/restore-points/rp-4/exports')).send({ diskIds: ['disk0'] }).expect(201);
    const refused = await hub.admin(hub.http().delete('/api/v1/restore-points/rp-2')).expect(409);
    expect(refused.body.message).toMatch(/in use: .*rp-4.qcow2 is exported by NBD lease/);
    await hub.admin(hub.http().delete(`/api/v1/repositories/${repositoryId}`)).expect(409);
    await hub.admin(hub.http().delete(`/api/v1/restore-point-exports/${exported.body.exportId}`)).expect(200);
    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-2')).expect(200);
    await expectContent(['rp-1', 'rp-3', 'rp-4']);
  });

  /**
   * A hub (`hubInstance`, or one not named) that began merging rp-1 and crashed past the merge's commit, and this hub
   * started again on its data dir with `env`.
   */
  async function crashMidMergeAndRestart(hubInstance: string | undefined, env: Record<string, string> = {}) {
    await rescan();
    const { AggregateRepository } = await import('../eventing/aggregate-repository');
    const { chainAggregate } = await import('../restore-points/chain.aggregate');
    const { chainStream } = await import('../restore-points/chain.events');
    const { planMergeOldest, beginMerge, runMergeStep } = await import('./qcow2/chain-surgery');
    await hub.app.get(AggregateRepository).execute(chainStream('vm1', repositoryId), chainAggregate, { kind: 'startDelete', restorePointId: 'rp-1', ...(hubInstance ? { hubInstance } : {}) });
    const plan = await planMergeOldest({ oldest: chain.file('rp-1', 'disk0'), next: chain.file('rp-2', 'disk0'), id: 'rp-1-disk0' });
    await runMergeStep(await beginMerge(plan), 'commit');
    return { ...(await restartHub(env)), chainStream };
  }

  /** This hub stopped (cleanly: what it keeps at shutdown runs on) and started again on its data dir with `env`. */
  async function restartHub(env: Record<string, string> = {}) {
    const { db, dataDir } = hub;
    // the restarted hub keeps the default NBD port range: what the first one leased lies outside it, as after an
    // operator changed SENDENSE_NBD_PORTS, and is still released
    await hub.app.close();
    const { createHubApp } = await import('../hub/create-hub-app');
    const { loadHubConfig } = await import('../config/hub-config');
    const { hashToken } = await import('../auth/token-hash');
    const restarted = await createHubApp({ config: loadHubConfig({ SENDENSE_DATA_DIR: dataDir, SENDENSE_LOG_LEVEL: 'warn', ...env }), connection: db.connection, dataSource: db.dataSource, store: db.store, adminTokenHash: hashToken('x'.repeat(20)) });
    await restarted.init();
    // the test hub's own close would close the restarted one's application again
    hub.app = { close: async () => undefined } as never;
    return { restarted, db, dataDir };
  }

  /** The records of an export a hub process that is gone ran for `jobId`: leased, started, running there. */
  async function goneHubExport(jobId: string, file: string) {
    const { CommandBus } = await import('@nestjs/cqrs');
    const { AllocateNbdPortCommand } = await import('../nbd/ports/commands/allocate-nbd-port.command');
    const { RequestQemuNbdStartCommand } = await import('../nbd/exports/commands/request-qemu-nbd-start.command');
    const { RecordQemuNbdStartedCommand } = await import('../nbd/exports/commands/record-qemu-nbd-started.command');
    const commands = hub.app.get(CommandBus);
    const lease = await commands.execute(new AllocateNbdPortCommand(jobId, 'disk0'));
    const exportName = `${jobId}-disk0`;
    await commands.execute(new RequestQemuNbdStartCommand(lease.leaseId, { leaseId: lease.leaseId, port: lease.port, jobId, diskId: 'disk0', file, format: 'qcow2', readOnly: true, exportName, bitmap: null, tls: true, hubInstance: GONE_HUB }));
    const started = await commands.execute(new RecordQemuNbdStartedCommand(lease.leaseId, 999_999, []));
    await hub.app.get(ProjectionsService).waitFor('qemu-nbd-processes', started.position);
    return { ...lease, exportName, commands };
  }
  const GONE_HUB = 'hub-that-is-gone';

  it("an export a gone hub process left, which a takeover records ended, no longer holds its point against deletes; one a live process runs still does", async () => {
    await rescan();
    const { NbdExportsService } = await import('../nbd/exports/nbd-exports.service');
    const nbd = hub.app.get(NbdExportsService);
    const jobId = 'restore-of-a-gone-hub';
    const lease = await goneHubExport(jobId, realpathSync(chain.file('rp-4', 'disk0')));
    expect((await hub.admin(hub.http().delete('/api/v1/restore-points/rp-4')).expect(409)).body.message).toContain(`exported by NBD lease ${lease.leaseId}`);
    // named as another process's (one that is alive): left as it is
    await nbd.abandon([lease.leaseId], 'another-hub-process', 'not this one');
    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-4')).expect(409);
    // what the takeover of that process's restore does: its export is recorded ended, whichever host leased its port
    await nbd.abandon([lease.leaseId], GONE_HUB, `its hub process ${GONE_HUB} stopped and did not come back`);
    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-4')).expect(200);
  });

  it('a restore mount and a restore point export of a hub process gone for good are released and closed by another hub, and their points delete again', async () => {
    await rescan();
    const { AggregateRepository } = await import('../eventing/aggregate-repository');
    const { QueryBus } = await import('@nestjs/cqrs');
    const { restoreMountAggregate } = await import('../restore/restore-mount.aggregate');
    const { restoreMountStream } = await import('../restore/restore-mount.events');
    const { RestoreMountSourceQuery } = await import('../restore/queries/restore-mount-source.query');
    const { resolveChainFiles } = await import('../restore/adapters/chain-files');
    const { OpenPointExportCommand } = await import('../disk-images/commands/open-point-export.command');
    // the gone process held a mount of rp-4's disk0 (reading rp-1 to rp-4) and served an export of rp-3's
    const mountId = '5a0d3e4c-2b1f-4c7e-9a8b-6d5e4f3a2b1c';
    const point = await resolveChainFiles(await hub.app.get(QueryBus).execute(new RestoreMountSourceQuery('rp-4')));
    await hub.app.get(AggregateRepository).execute(restoreMountStream(mountId), restoreMountAggregate, { kind: 'request', mountId, point, diskId: 'disk0', hubInstance: GONE_HUB, idleTimeoutSeconds: 3600 });
    const exportId = '0f4e2d6a-8c1b-4e3f-a5d7-9b2c1e0f3a4d';
    const file = realpathSync(chain.file('rp-3', 'disk0'));
    const lease = await goneHubExport(`pe-${exportId}`, file);
    await lease.commands.execute(new OpenPointExportCommand({ exportId, restorePointId: 'rp-3', vmId: 'vm1', repositoryId, hubInstance: GONE_HUB, tls: true, disks: [{ diskId: 'disk0', file, leaseId: lease.leaseId, port: lease.port, host: '127.0.0.1', exportName: lease.exportName }] }, '127.0.0.1'));
    await hub.admin(hub.http().delete('/api/v1/restore-points/rp-4')).expect(409);

    const { restarted } = await restartHub({ SENDENSE_GONE_HUB_CHECK_S: '1', SENDENSE_GONE_HUB_AFTER_S: '3' });
    try {
      const api = request(restarted.getHttpServer());
      const admin = (req: request.Test) => req.set('Authorization', `Bearer ${'x'.repeat(20)}`);
      const mount = async () => (await admin(api.get(`/api/v1/restore/mounts/${mountId}`)).expect(200)).body;
      const exported = async () => (await admin(api.get('/api/v1/restore-points/rp-3/exports')).expect(200)).body.find((e: { exportId: string }) => e.exportId === exportId);
      for (const deadline = Date.now() + 30_000; (await mount()).status !== 'released' || (await exported()).status !== 'closed'; await new Promise((r) => setTimeout(r, 200))) {
        if (Date.now() > deadline) throw new Error('the gone hub process\'s mount and export were not taken over');
      }
      expect(await mount()).toMatchObject({ status: 'released', releaseReason: 'hub-gone' });
      expect(await exported()).toMatchObject({ status: 'closed', closeReason: 'hub-gone', closeDetail: `its hub process ${GONE_HUB} stopped and did not come back` });
      await admin(api.delete('/api/v1/restore-points/rp-4')).expect(200);
    } finally {
      await restarted.close();
    }
  });

  it("a restore point export's disk left running before the export was recorded open (the hub stopped while opening it) is stopped at the next start, its port released", async () => {
    await rescan();
    const { NbdExportsService } = await import('../nbd/exports/nbd-exports.service');
    const nbd = hub.app.get(NbdExportsService);
    // what openExport does for the first disk, the hub then stopping before it records the export: kept running as
    // an export that survives a stop is, so that the next start adopts it
    const started = await nbd.start({ jobId: 'pe-7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11', diskId: 'disk0', file: chain.file('rp-1', 'disk0'), format: 'qcow2', readOnly: true, bitmap: null, tls: false });
    nbd.keepAtShutdown(started.leaseId);
    const { restarted } = await restartHub();
    try {
      expect(readCmdlineOf(started.pid)).toEqual([]);
      const leases = await restarted.get(NbdExportsService).leasesOfJob('pe-7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11');
      expect(leases).toEqual([]);
    } finally {
      await restarted.close();
    }
  });

  it('finishes at the next start a merge that a crash interrupted', async () => {
    const { restarted, db, chainStream } = await crashMidMergeAndRestart(undefined);
    try {
      expect(existsSync(chain.file('rp-1', 'disk0'))).toBe(false);
      expect(existsSync(chain.file('rp-1', 'disk1'))).toBe(false);
      await expectContent(['rp-2', 'rp-3', 'rp-4']);
      const [row] = await db.dataSource.query(`SELECT type, parent_id, status FROM rm_restore_points WHERE restore_point_id = 'rp-2'`);
      expect(row).toEqual({ type: 'full', parent_id: null, status: 'available' });
      const events = await db.store.readStream(chainStream('vm1', repositoryId));
      const started = events.find((e) => e.type === 'RestorePointDeleteStarted')!;
      const merged = events.find((e) => e.type === 'RestorePointMerged')!;
      expect(merged.metadata).toMatchObject({ correlationId: started.metadata.correlationId, causationId: started.id });
    } finally {
      await restarted.close();
    }
  });

  it("a delete another hub process ran is left to it at a restart, and finished once that process is gone for good", async () => {
    const { restarted, db, dataDir, chainStream } = await crashMidMergeAndRestart('hub-that-crashed', { SENDENSE_GONE_HUB_CHECK_S: '1', SENDENSE_GONE_HUB_AFTER_S: '3' });
    try {
      const types = async () => (await db.store.readStream(chainStream('vm1', repositoryId))).map((e) => e.type);
      // not this process's delete: its start leaves it alone (two processes running one surgery undo each other's work)
      expect((await types()).slice(-1)).toEqual(['RestorePointDeleteStarted']);
      expect(existsSync(chain.file('rp-1', 'disk0'))).toBe(true);
      for (const deadline = Date.now() + 30_000; !(await types()).includes('RestorePointMerged'); await new Promise((r) => setTimeout(r, 200))) {
        if (Date.now() > deadline) throw new Error('the delete was not taken over');
      }
      const instance = readFileSync(join(dataDir, 'instance-id'), 'utf8').trim();
      const events = await db.store.readStream(chainStream('vm1', repositoryId));
      expect(events.slice(-3).map((e) => [e.type, e.data.hubInstance ?? null, e.data.from ?? null])).toEqual([
        ['RestorePointDeleteStarted', 'hub-that-crashed', null],
        ['RestorePointDeleteAdopted', instance, 'hub-that-crashed'],
        ['RestorePointMerged', null, null],
      ]);
      // in the story of the delete: the takeover and the end caused by its start
      const [start, adoption, merge] = events.slice(-3);
      expect([adoption.metadata, merge.metadata]).toEqual([expect.objectContaining({ correlationId: start.metadata.correlationId, causationId: start.id }), expect.objectContaining({ correlationId: start.metadata.correlationId, causationId: start.id })]);
      expect(existsSync(chain.file('rp-1', 'disk0'))).toBe(false);
      await expectContent(['rp-2', 'rp-3', 'rp-4']);
    } finally {
      await restarted.close();
    }
  });

  it('PATCH changes maxChainDepth: the answer and GET show it, its event carries the request correlation id, the same value again appends nothing, and bad input, other roles and a removed repository change nothing', async () => {
    const url = `/api/v1/repositories/${repositoryId}`;
    const shown = async () => (await hub.admin(hub.http().get(url)).expect(200)).body.maxChainDepth;
    const patch = (body: unknown, token = TEST_ADMIN_TOKEN) => hub.http().patch(url).set('Authorization', `Bearer ${token}`).send(body as object);
    expect(await shown()).toBe(32);

    const changed = await patch({ maxChainDepth: 5 }).set('X-Correlation-Id', 'depth-to-5').expect(200);
    expect(changed.body).toMatchObject({ repositoryId, name: 'main', path: root, maxChainDepth: 5 });
    expect(await shown()).toBe(5);
    expect((await hub.admin(hub.http().get('/api/v1/repositories')).expect(200)).body.map((r: { maxChainDepth: number }) => r.maxChainDepth)).toEqual([5]);
    const story = (await hub.admin(hub.http().get('/api/v1/audit/correlations/depth-to-5')).expect(200)).body.events;
    expect(story.map((e: { type: string; streamId: string; data: unknown }) => [e.type, e.streamId, e.data])).toEqual([['RepositorySettingsChanged', `repository-${repositoryId}`, { repositoryId, maxChainDepth: 5, previous: 32 }]]);
    expect(story[0].metadata).toMatchObject({ correlationId: 'depth-to-5', actor: 'admin', causationId: story[0].metadata.commandId });

    const streamEvents = async () => (await hub.db.dataSource.query(`SELECT count(*)::int AS n FROM es_events WHERE stream_id = $1`, [`repository-${repositoryId}`]))[0].n as number;
    const before = await streamEvents();
    expect((await patch({ maxChainDepth: 5 }).expect(200)).body.maxChainDepth).toBe(5);
    for (const maxChainDepth of [1, 0, -4, 2.5, '7', 1001, null]) {
      const refused = await patch({ maxChainDepth }).expect(400);
      expect(JSON.stringify(refused.body.message)).toMatch(/maxChainDepth must be/);
    }
    expect(JSON.stringify((await patch({}).expect(400)).body.message)).toMatch(/maxChainDepth must be/);
    expect(JSON.stringify((await patch({ maxChainDepth: 6, immutableDays: 3 }).expect(400)).body.message)).toMatch(/property immutableDays should not exist/);
    for (const role of ['operator', 'viewer'] as const) {
      const token = (await hub.admin(hub.http().post('/api/v1/tokens')).send({ name: `depth-${role}`, role }).expect(201)).body.token;
      await patch({ maxChainDepth: 6 }, token).expect(403);
    }
    expect(await streamEvents()).toBe(before);

    const spareRoot = join(dir, 'repo-spare');
    const spare = (await hub.admin(hub.http().post('/api/v1/repositories')).send({ name: 'spare', kind: 'local', path: spareRoot, maxChainDepth: 9 }).expect(201)).body.repositoryId;
    await hub.admin(hub.http().delete(`/api/v1/repositories/${spare}`)).expect(204);
    const removedAt = await eventCount(hub.db);
    const gone = await hub.admin(hub.http().patch(`/api/v1/repositories/${spare}`)).send({ maxChainDepth: 4 }).expect(404);
    expect(gone.body.message).toBe(`repository ${spare} does not exist`);
    expect(await eventCount(hub.db)).toBe(removedAt);
    expect(await shown()).toBe(5);
  });

  it('refuses to start a backup that cannot fit, with the sizes in the reason', async () => {
    const check = hub.app.get(SpaceCheck);
    await expect(check.assertFits(repositoryId, [2 ** 50])).rejects.toThrow(/not enough space in repository .*GiB free, but the backup may need up to 10487\d\d\.\d GiB \(qemu-img measure of 1 disk\(s\)\)/);
    await expect(check.assertFits(repositoryId, [64 * 1024 * 1024])).resolves.toMatchObject({ requiredBytes: expect.any(Number) });
  });

  it.each([
    ['post', '/api/v1/repositories', { name: 'x', kind: 'local', path: 'relative/dir' }, 400, /path must be an absolute path/],
    ['post', '/api/v1/repositories', { name: 'x', kind: 'zfs', path: '/tmp/x' }, 400, /kind must be one of/],
    ['post', '/api/v1/repositories', { name: 'x', kind: 'local', path: '/tmp/x', server: 'nas' }, 400, /server do\(es\) not apply to a local repository/],
    ['post', '/api/v1/repositories', { name: 'main', kind: 'local', path: '/tmp/other-sendense-repo' }, 409, /already exists/],
    ['post', '/api/v1/repositories', { name: 'inner', kind: 'local', path: '@ROOT/vm1' }, 409, /overlaps repository main/],
    ['post', '/api/v1/repositories', { name: 'x', kind: 'nfs', server: 'nas;reboot', export: '/e' }, 400, /server must be a host name/],
    ['post', '/api/v1/repositories', { name: 'x', kind: 'nfs', server: 'nas', export: '/e', options: 'ro -o x' }, 400, /options must be/],
    ['post', '/api/v1/repositories', { name: 'x', kind: 'nfs', server: '127.0.0.1', export: '/export' }, 400, /could not mount the nfs repository/],
    ['post', '/api/v1/repositories', { name: 'x', kind: 'cifs', share: '//nas/b', username: 'u', passwordFile: '/nonexistent' }, 400, /passwordFile .* does not exist/],
    ['get', '/api/v1/repositories/not-a-uuid', undefined, 400, /repositoryId must be a uuid/],
    ['get', '/api/v1/repositories/7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11', undefined, 404, /does not exist/],
    ['post', '/api/v1/repositories/7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11/rescan', undefined, 404, /does not exist/],
    ['patch', '/api/v1/repositories/7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11', { maxChainDepth: 5 }, 404, /repository 7d3c4bd8-4b0e-4a8e-9d0e-1c1f0e3c2a11 does not exist/],
    ['patch', '/api/v1/repositories/not-a-uuid', { maxChainDepth: 5 }, 400, /repositoryId must be a uuid/],
    ['delete', '/api/v1/restore-points/..%2F..%2Fetc', undefined, 400, /restorePointId must be/],
    ['delete', '/api/v1/restore-points/rp-99', undefined, 404, /does not exist/],
    ['post', '/api/v1/restore-points/rp-99/verify', undefined, 404, /does not exist/],
    ['get', '/api/v1/vms/vm%201/restore-points', undefined, 400, /vmId must be/],
    ['get', '/api/v1/vms/vm1/restore-points?repositoryId=../x', undefined, 400, /repositoryId must be a uuid/],
  ] as const)('%s %s %j → %i and nothing changes', async (method, path, body, status, message) => {
    await rescan();
    const before = await eventCount(hub.db);
    const req = hub.admin(hub.http()[method](path));
    const res = await (body ? req.send(JSON.parse(JSON.stringify(body).replace('@ROOT', root))) : req).expect(status);
    expect(JSON.stringify(res.body.message)).toMatch(message);
    expect(await eventCount(hub.db)).toBe(before);
    await expectContent(chain.points);
  });
});
