import { INestApplication } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { hashToken } from '../auth/token-hash';
import { loadHubConfig } from '../config/hub-config';
import { metadataFor } from '../eventing/event-metadata';
import { createHubApp } from '../hub/create-hub-app';
import { hubInstanceId } from '../config/hub-instance';
import { hostLeftovers, NOTHING_LEFT } from '../../test/fixtures/restore/host-leftovers';
import { buildRestoreFixtures, removeRestoreFixtures, RestoreFixtures } from '../../test/fixtures/restore/restore-images';
import { buildRestoreRepository, RestoreRepository } from '../../test/fixtures/restore/restore-repository';
import { processesMentioning } from '../../test/support/processes';
import { createTestDatabase, TestDatabase } from '../../test/support/test-database';
import { TEST_ADMIN_TOKEN } from '../../test/support/test-hub';
import { RestorePointMounter } from './mounting';
import { toMountVolume } from './restore-mount.workflow';
import { runProcess } from '../process/run-process';
import { RESTORE_MOUNT_READY, RESTORE_MOUNT_REQUESTED, restoreMountStream } from './restore-mount.events';

/**
 * Start, idle expiry and shutdown of restore mounts, on a hub this suite
 * starts itself so that it can keep the database and data dir of a "crashed"
 * hub, and with SENDENSE_RESTORE_IDLE_S=1.
 */
describe('restore mount lifecycle: hub restart, idle timeout, shutdown (real hub, real mounts)', () => {
  let fixtures: RestoreFixtures;
  let db: TestDatabase;
  let dataDir: string;
  let scratch: string;
  let repo: RestoreRepository;
  let app: INestApplication | null = null;

  const http = () => request(app!.getHttpServer());
  const admin = (req: request.Test) => req.set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
  const get = (path: string) => admin(http().get(path));
  const workDir = (mountId: string) => join(dataDir, 'restore', mountId);

  async function startHub(): Promise<void> {
    const config = loadHubConfig({ SENDENSE_LOG_LEVEL: 'warn', SENDENSE_DATA_DIR: dataDir, SENDENSE_SSH_PORT: '0', SENDENSE_SSH_BIND: '127.0.0.1', SENDENSE_RESTORE_IDLE_S: '1' });
    app = await createHubApp({ config, connection: db.connection, dataSource: db.dataSource, store: db.store, adminTokenHash: hashToken(TEST_ADMIN_TOKEN) });
    await app.init();
  }

  async function waitFor<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (done(value) || Date.now() > deadline) return value;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  beforeAll(async () => {
    [fixtures, db] = await Promise.all([buildRestoreFixtures(), createTestDatabase()]);
    dataDir = mkdtempSync(join(tmpdir(), 'sendense-restore-lifecycle-'));
    scratch = mkdtempSync(join(tmpdir(), 'sendense-restore-lifecycle-repo-'));
    repo = await buildRestoreRepository(join(scratch, 'repository'), fixtures);
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await new RestorePointMounter().cleanupLeftovers(join(dataDir, 'restore'));
    await db?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
    await fs.rm(scratch, { recursive: true, force: true });
    await removeRestoreFixtures(fixtures);
  });

  it('at start, takes down what a crashed hub left mounted and records RestoreMountReleased{hub-restart}', async () => {
    // What a hub that died with a live mount leaves: its events say "ready", and qemu-nbd, nbdfuse,
    // fusefat and the kernel mounts keep running under <dataDir>/restore/<mountId>. A point the hub serves itself
    // would go down with it: this one has compressed clusters, which qemu-nbd serves, as a process of its own.
    const mountId = randomUUID();
    const crashed = new RestorePointMounter();
    const compressed = join(scratch, 'gpt-compressed.qcow2');
    await runProcess('qemu-img', ['convert', '-c', '-f', 'qcow2', '-O', 'qcow2', fixtures.gpt.incremental, compressed]);
    const mounted = await crashed.mount({ mountId, imageFile: compressed, workDir: workDir(mountId) });
    const target = {
      mountId,
      restorePointId: 'rp-x',
      vmId: 'vm-x',
      repositoryId: randomUUID(),
      diskId: 'disk0',
      file: compressed,
      chainFiles: [compressed],
      hubInstance: hubInstanceId(dataDir),
      idleTimeoutSeconds: 1,
    };
    await db.store.append(
      restoreMountStream(mountId),
      [
        { type: RESTORE_MOUNT_REQUESTED, data: target, metadata: metadataFor(randomUUID()) },
        { type: RESTORE_MOUNT_READY, data: { mountId, partitionTable: mounted.partitionTable, diskSize: mounted.diskSize, volumes: mounted.volumes.map(toMountVolume) }, metadata: metadataFor(randomUUID()) },
      ],
      'no_stream',
    );
    // A mount of another hub on the same database is not this hub's to release.
    const foreignId = randomUUID();
    await db.store.append(restoreMountStream(foreignId), [{ type: RESTORE_MOUNT_REQUESTED, data: { ...target, mountId: foreignId, hubInstance: 'another-hub' }, metadata: metadataFor(randomUUID()) }], 'no_stream');
    expect(processesMentioning(workDir(mountId)).length).toBeGreaterThanOrEqual(3);

    await startHub();

    expect(await hostLeftovers(workDir(mountId))).toEqual(NOTHING_LEFT);
    expect((await get(`/api/v1/restore/mounts/${mountId}`).expect(200)).body).toMatchObject({ status: 'released', releaseReason: 'hub-restart', releaseDetail: 'the hub restarted', expiresAt: null });
    expect((await get(`/api/v1/restore/mounts/${foreignId}`).expect(200)).body).toMatchObject({ status: 'mounting' });
    const events = (await get(`/api/v1/audit/streams/restore-mount-${mountId}`).expect(200)).body.events;
    expect(events.at(-1)).toMatchObject({ type: 'RestoreMountReleased', data: { mountId, reason: 'hub-restart' }, metadata: { actor: 'system' } });
    // The release at start belongs to the mount's story, caused by the event that left the mount active.
    expect(events.at(-1).metadata).toMatchObject({ correlationId: events[0].metadata.correlationId, causationId: events.at(-2).eventId });
    await admin(http().delete(`/api/v1/restore/mounts/${foreignId}`)).expect(409, /held by another hub process/);
  });

  it('releases a mount after SENDENSE_RESTORE_IDLE_S without access; every access renews it', async () => {
    const repositoryId = (await admin(http().post('/api/v1/repositories')).send({ name: 'restore', kind: 'local', path: repo.root }).expect(201)).body.repositoryId;
    await admin(http().post(`/api/v1/repositories/${repositoryId}/rescan`)).expect(201);
    const mounted = (await admin(http().post('/api/v1/restore/mounts')).send({ restorePointId: repo.single.point }).expect(201)).body;
    expect(mounted).toMatchObject({ status: 'ready', idleTimeoutSeconds: 1 });
    expect(new Date(mounted.expiresAt).getTime() - new Date(mounted.lastAccessAt).getTime()).toBe(1000);

    // Browsing every 300 ms for 2 s keeps it: each listing renews the timeout.
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      await get(`/api/v1/restore/mounts/${mounted.mountId}/files`).expect(200);
      await new Promise((r) => setTimeout(r, 300));
    }
    const renewed = (await get(`/api/v1/restore/mounts/${mounted.mountId}`).expect(200)).body;
    expect(renewed.status).toBe('ready');
    expect(new Date(renewed.expiresAt).getTime()).toBeGreaterThan(new Date(mounted.expiresAt).getTime() + 1000);

    const released = await waitFor(() => get(`/api/v1/restore/mounts/${mounted.mountId}`).then((r) => r.body), (body) => body.status === 'released', 5000);
    expect(released).toMatchObject({ status: 'released', releaseReason: 'idle-timeout', releaseDetail: 'no access for 1 s', expiresAt: null });
    expect(await hostLeftovers(workDir(mounted.mountId))).toEqual(NOTHING_LEFT);
    await get(`/api/v1/restore/mounts/${mounted.mountId}/files`).expect(409, /was released \(idle-timeout\)/);
    const story = (await get(`/api/v1/audit/streams/restore-mount-${mounted.mountId}`).expect(200)).body.events as Array<{ type: string; metadata: { correlationId: string } }>;
    const types = story.map((e) => e.type);
    expect(story.at(-1)!.metadata.correlationId).toBe(story[0].metadata.correlationId);
    expect(types[0]).toBe('RestoreMountRequested');
    expect(types[1]).toBe('RestoreMountReady');
    expect(types).toContain('RestoreMountAccessed');
    expect(types.at(-1)).toBe('RestoreMountReleased');
  });

  it('releases a mount whose nbdfuse died (helper-exited) and leaves nothing behind', async () => {
    // the hub serves this point itself (no qemu-nbd; src/restore/mounting/restore-point-mounter.int.spec.ts has a qemu-nbd that dies)
    const mounted = (await admin(http().post('/api/v1/restore/mounts')).send({ restorePointId: 'rp-1', diskId: 'disk-gpt' }).expect(201)).body;
    expect(processesMentioning(workDir(mounted.mountId)).find((p) => p.cmdline.startsWith('qemu-nbd'))).toBeUndefined();
    const nbdfuse = processesMentioning(workDir(mounted.mountId)).find((p) => p.cmdline.startsWith('nbdfuse'));
    expect(nbdfuse).toBeDefined();
    process.kill(nbdfuse!.pid, 'SIGKILL');
    const released = await waitFor(() => get(`/api/v1/restore/mounts/${mounted.mountId}`).then((r) => r.body), (body) => body.status === 'released', 15_000);
    expect(released).toMatchObject({ status: 'released', releaseReason: 'helper-exited', releaseDetail: expect.stringMatching(/^nbdfuse ended unexpectedly \(killed by SIGKILL\)/) });
    expect(await hostLeftovers(workDir(mounted.mountId))).toEqual(NOTHING_LEFT);
  });

  it('a graceful shutdown unmounts everything and records RestoreMountReleased{hub-shutdown}', async () => {
    const mounted = (await admin(http().post('/api/v1/restore/mounts')).send({ restorePointId: 'rp-2', diskId: 'disk-mbr' }).expect(201)).body;
    expect(processesMentioning(workDir(mounted.mountId)).length).toBeGreaterThanOrEqual(3);
    await app!.close();
    app = null;
    expect(await hostLeftovers(join(dataDir, 'restore'))).toEqual({ ...NOTHING_LEFT, dirExists: true });
    expect(processesMentioning(dataDir)).toEqual([]);
    const events = await db.store.readStream(restoreMountStream(mounted.mountId));
    expect(events.at(-1)).toMatchObject({ type: 'RestoreMountReleased', data: { reason: 'hub-shutdown' } });
  });
});
