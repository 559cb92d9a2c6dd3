import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { FakedClock } from '../support/faked-clock';
import { spawnSendense } from '../support/processes';

const run = promisify(execFile);
const DAY = 86_400_000;
const START = Date.parse('2024-06-01T00:00:00Z');

/**
 * An immutable repository on real files (ext4 under the test's directory, FAT through FUSE for the refusal) with a real hub and
 * agent; the hub's clock is moved by libfaketime through a timestamp file, as in the retention tests.
 */
describe('immutable repository (real hub + agent, chattr on real files, the hub clock moved past the lock)', () => {
  const clock = new FakedClock('immutable');
  const setClock = (ms: number) => clock.at(ms);
  const lab = new BackupLab(clock.env);
  let locked: string;
  let fat: string | undefined;

  beforeAll(async () => {
    clock.requireLibrary();
    setClock(START);
    await lab.start();
  }, 120_000);

  afterAll(async () => {
    if (fat) await run('umount', [fat]).catch(() => undefined);
    // whatever a failed assertion left immutable would keep the lab's directory from being removed
    if (lab.dir) await run('chattr', ['-R', '-i', lab.dir]).catch(() => undefined);
    await lab.close();
    clock.remove();
  });

  type Point = { restorePointId: string; createdAt: string; disks: { diskId: string; file: string; digests: { file: string } | null }[] };
  const points = async (): Promise<Point[]> => (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${locked}`)).body;
  const root = () => join(lab.dir, 'locked');
  const attributes = async (file: string) => (await run('lsattr', ['-d', file])).stdout.split(/\s+/)[0];

  it('refuses bad immutableDays and a filesystem that cannot make files immutable, registering nothing', async () => {
    for (const immutableDays of [0, -1, 1.5, 'seven', 36501]) {
      const res = await lab.api('POST', '/api/v1/repositories', { name: 'bad', kind: 'local', path: join(lab.dir, 'bad'), immutableDays });
      expect({ immutableDays, status: res.status, message: String(res.body.message) }).toEqual({ immutableDays, status: 400, message: expect.stringMatching(/immutableDays/) });
    }
    // FAT through FUSE: no inode flags at all (tmpfs has had the immutable flag since Linux 6.0)
    const image = join(lab.dir, 'fat.img');
    await run('truncate', ['-s', '16M', image]);
    await run('mkfs.vfat', [image]);
    fat = join(lab.dir, 'fat');
    mkdirSync(fat);
    await run('fusefat', ['-o', 'rw+', image, fat]);
    const res = await lab.api('POST', '/api/v1/repositories', { name: 'fat', kind: 'local', path: fat, immutableDays: 1 });
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(new RegExp(`the filesystem of ${fat} cannot make files immutable \\(chattr \\+i: .+\\): an immutable repository needs one that can, such as ext4 or xfs`));
    expect(await run('ls', ['-A', fat])).toMatchObject({ stdout: '' });
    expect(((await lab.api('GET', '/api/v1/repositories')).body as { name: string }[]).map((r) => r.name)).toEqual(['lab']);
  });

  it('the CLI registers an immutable repository, and passes a bad day count on for the hub to refuse', async () => {
    const env = { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN };
    const bad = spawnSendense(['repository', 'add', '--name', 'cli-bad', '--path', join(lab.dir, 'cli-bad'), '--immutable-days', 'week'], env);
    expect(await bad.exited).toMatchObject({ code: 1 });
    expect(bad.output()).toMatch(/immutableDays must be a whole number of days/);
    const cli = spawnSendense(['repository', 'add', '--name', 'cli-locked', '--path', join(lab.dir, 'cli-locked'), '--immutable-days', '30'], env);
    expect(await cli.exited).toMatchObject({ code: 0 });
    expect(cli.output()).toMatch(/cli-locked .* free {2}points immutable for 30 day\(s\)/);
    const listed = ((await lab.api('GET', '/api/v1/repositories')).body as { name: string; immutableDays: number | null }[]).map(({ name, immutableDays }) => ({ name, immutableDays }));
    expect(listed).toEqual([
      { name: 'lab', immutableDays: null },
      { name: 'cli-locked', immutableDays: 30 },
    ]);
  });

  it('keeps its points immutable for immutableDays: the files cannot be removed, delete and prune wait for the date, policies must start new chains, and whole chains go after the lock', async () => {
    const registered = await lab.api('POST', '/api/v1/repositories', { name: 'locked', kind: 'local', path: root(), immutableDays: 1 });
    expect(registered.status).toBe(201);
    expect(registered.body).toMatchObject({ name: 'locked', immutableDays: 1 });
    locked = registered.body.repositoryId;
    lab.repositoryId = locked;
    // two chains: a full and an incremental, then a new full
    const backups: string[] = [];
    for (const type of ['full', 'incremental', 'full'] as const) {
      backups.push(await lab.backup(type));
      expect(await lab.waitForJob(backups.at(-1)!, 120_000)).toMatchObject({ status: 'completed' });
    }
    const [full, incremental, second] = await points();

    // every file of every point carries the attribute; even root cannot remove one
    for (const point of [full, incremental, second]) {
      for (const disk of point.disks) {
        for (const file of [disk.file, disk.digests!.file]) expect({ file, attributes: await attributes(join(root(), file)) }).toEqual({ file, attributes: expect.stringContaining('i') });
      }
      expect(await attributes(join(root(), 'vm1', 'manifests', `${point.restorePointId}.json`))).toContain('i');
    }
    const file = join(root(), full.disks[0].file);
    await expect(run('rm', ['-f', file])).rejects.toMatchObject({ stderr: expect.stringContaining('Operation not permitted') });
    expect(existsSync(file)).toBe(true);

    const until = (p: Point) => new Date(Date.parse(p.createdAt) + DAY).toISOString();
    const rule = 'repository locked keeps its restore points immutable for 1 day(s) after they were written';
    const newest = await lab.api('DELETE', `/api/v1/restore-points/${incremental.restorePointId}`);
    expect(newest).toMatchObject({ status: 409, body: { message: `restore point ${incremental.restorePointId} is immutable until ${until(incremental)}: ${rule}` } });
    const oldest = await lab.api('DELETE', `/api/v1/restore-points/${full.restorePointId}`);
    expect(oldest).toMatchObject({ status: 409, body: { message: `restore point ${full.restorePointId} is immutable until ${until(full)}: ${rule}` } });

    // a policy writing into it must start new chains; retention removes a whole chain, newest point first, and defers what the lock holds
    const definition = { name: 'keep-1', vms: { ids: ['vm1'] }, repositoryId: locked, schedule: { cron: '0 0 1 1 *', timezone: 'UTC' }, retention: { keepLast: 1 }, rpoHours: 24 };
    const refused = await lab.api('POST', '/api/v1/policies', definition);
    expect(refused).toMatchObject({ status: 400, body: { message: expect.stringContaining('repository locked keeps its restore points immutable for 1 day(s) and removes only whole chains: give fullEvery') } });
    // keep-1 over three points prunes two: more than half, so the policy says it means it
    const policy = await lab.api('POST', '/api/v1/policies', { ...definition, fullEvery: 7, confirmPrune: true });
    expect(policy.status).toBe(201);
    const prune = () => lab.api('POST', `/api/v1/policies/${policy.body.policyId}/prune`);
    type RetentionEvent = { type: string; data: { restorePointId: string; reason: string; trigger: { kind: string; backupId?: string }; marks?: { prunedBy?: string }[] } };
    const retentionEvents = async (): Promise<RetentionEvent[]> => (await lab.api('GET', `/api/v1/audit/streams/retention-${policy.body.policyId}?limit=100`)).body.events;
    expect((await prune()).status).toBe(200);
    const deferred = (await retentionEvents()).filter((e) => e.type === 'RetentionPruneDeferred');
    expect(deferred.map((e) => e.data)).toEqual([
      expect.objectContaining({ restorePointId: incremental.restorePointId, reason: expect.stringContaining(`restore point ${incremental.restorePointId} is immutable until ${until(incremental)}`) }),
      expect.objectContaining({ restorePointId: full.restorePointId, reason: expect.stringContaining(`restore point ${full.restorePointId} is immutable until ${until(full)}`) }),
    ]);
    expect((await points()).map((p) => p.restorePointId)).toEqual([full.restorePointId, incremental.restorePointId, second.restorePointId]);

    // a point whose attribute was taken away (a hub stopped between recording and sealing it) is sealed at the next start
    await run('chattr', ['-i', file]);
    await lab.stop(lab.hub);
    await lab.startHub();
    await lab.until(async () => (await attributes(file)).includes('i'), 30_000, 'the restarted hub to seal the point again');
    // the restarted hub gives each recent backup its decision by the policy now governing it (the first hub saw them
    // ungoverned); made after the clock moved, one would prune what this test deletes next
    const decided = async () => (await retentionEvents()).filter((e) => e.type === 'RetentionDecided' && e.data.trigger.kind === 'backup').map((e) => e.data.trigger.backupId);
    await lab.until(async () => {
      const ids = await decided();
      return backups.every((id) => ids.includes(id));
    }, 30_000, 'the restarted hub to decide retention after each backup');
    // and each decision to have gone through the points it pruned, every one deferred while the lock holds it: one
    // still under way when the clock moved deleted its next point, and the delete below met "the chain is busy
    // deleting" (a CI run on a fast machine; 1 run in 8 with the CPU loaded)
    const owed = async () => {
      let count = 0;
      for (const e of await retentionEvents()) {
        if (e.type === 'RetentionDecided') count += (e.data.marks ?? []).filter((m) => m.prunedBy).length;
        if (e.type === 'RetentionPruneDeferred') count--;
      }
      return count;
    };
    await lab.until(async () => (await owed()) === 0, 30_000, "the restarted hub's decisions to defer what they pruned");

    // past the locks: the oldest merges into its child, whose files are cleared for it; then retention takes the rest of that chain
    setClock(Date.parse(until(second)) + 3_600_000);
    expect(await lab.api('DELETE', `/api/v1/restore-points/${full.restorePointId}`)).toMatchObject({ status: 200 });
    expect(existsSync(file)).toBe(false);
    expect(await attributes(join(root(), incremental.disks[0].file))).not.toContain('i');
    const pruned = await prune();
    expect(pruned.body.chains[0]).toMatchObject({ pruned: [incremental.restorePointId], deferred: [] });
    expect((await points()).map((p) => p.restorePointId)).toEqual([second.restorePointId]);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${second.restorePointId}`)).status).toBe(200);
    expect(await points()).toEqual([]);
  }, 300_000);
});
