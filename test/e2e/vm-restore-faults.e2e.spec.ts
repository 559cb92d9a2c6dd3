import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureGuestImage, GuestDomain, startGuest, virsh } from '../fixtures/libvirt/libvirt-guest';
import { LibvirtHost } from '../support/libvirt-host';
import { LibvirtLab } from '../support/libvirt-lab';
import { processesMentioning } from '../support/processes';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/**
 * Restores under faults, against a real libvirtd, hub and agent and a 2-disk TCG guest: a cancelled instant
 * recovery, a start that fails, two restores to one name at once, an instant recovery whose storage (a small
 * loop-mounted ext4) fills, names virsh would read as another domain. Each that fails ends with what it says and
 * leaves no domain, no file, no proxy behind; the instant recovery whose storage fills keeps its domain and waits
 * for space, then completes.
 */
describe('restore faults under real libvirt', () => {
  const lab = new LibvirtLab();
  const host = new LibvirtHost('sendense-restore-faults-');
  let guest: GuestDomain | undefined;
  let agentId = '';
  let pointId = '';
  /** vdb's size: the disk whose copy takes a while. */
  const vdbBytes = 640 * MiB;
  let loop: { image: string; device: string; mount: string } | undefined;

  beforeAll(async () => {
    await host.open({ storage: true });
    // 512 MiB of data on vdb: an instant recovery's copy runs long enough to be watched, and fills a small filesystem
    guest = await startGuest({ name: `sendense-faults-${process.pid}`, dir: join(host.dir, 'g'), agent: true, d1Mib: vdbBytes / MiB, fillD1Mib: 512 });
    lab.vmIds = [guest.uuid];
    lab.consoleLogs = [guest.console];
    await lab.start();
    agentId = await lab.agentId();
    pointId = (await lab.waitForJob(await lab.backup('full', guest.uuid), 300_000)).restorePointId;
  }, 600_000);

  afterAll(
    () =>
      host.close(lab, {
        guest,
        beforeRemovingDir: async () => {
          if (!loop) return;
          await run('umount', [loop.mount]).catch(() => undefined);
          await run('losetup', ['-d', loop.device]).catch(() => undefined);
        },
      }),
    120_000,
  );

  const restore = (body: Record<string, unknown>) => lab.api('POST', '/api/v1/restores', { agentId, restorePointId: pointId, mode: 'full', ...body });
  const get = async (restoreId: string) => (await lab.api('GET', `/api/v1/restores/${restoreId}`)).body;
  async function waitForRestore(restoreId: string, timeoutMs = 300_000): Promise<any> {
    let r: any;
    await lab.until(async () => (r = await get(restoreId)).status !== 'running', timeoutMs, `restore ${restoreId} to end`);
    return r;
  }
  /** What a failed restore must not leave: a domain of that name, a file of it, an NBD proxy, an export, a journal, a qemu-nbd dir. */
  async function leftovers(name: string, dir = host.storage) {
    return {
      domain: (await virsh('list', '--all', '--name')).split('\n').map((n) => n.trim()).includes(name),
      qemu: processesMentioning(`guest=${name},`).map((p) => p.pid),
      files: existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith(name)) : [],
      nbdkit: processesMentioning(join(lab.dir, 'agent')).filter((p) => p.cmdline.includes('nbdkit')).map((p) => p.cmdline),
      leases: (await lab.api('GET', '/api/v1/nbd/ports')).body.length,
      agentDir: [...readdirSync(join(lab.dir, 'agent', 'restores')).filter((f) => f.startsWith('restore-') || f.startsWith('nbd-')), ...readdirSync(lab.workDir).filter((f) => f.startsWith('instant-'))],
    };
  }
  const clean = { domain: false, qemu: [], files: [], nbdkit: [], leases: 0, agentDir: [] };

  it('refuses a name virsh would read as a domain id or uuid (an existing domain\'s uuid, a running domain\'s id) with 400, recording nothing', async () => {
    const before = (await lab.api('GET', '/api/v1/restores')).body.length;
    const id = (await virsh('domid', guest!.name)).trim();
    for (const name of [guest!.uuid, guest!.uuid.replaceAll('-', ''), id, '1']) {
      const res = await restore({ target: { kind: 'new-domain', name, storageDir: host.storage } });
      expect({ name, status: res.status, message: JSON.stringify(res.body.message) }).toEqual({ name, status: 400, message: expect.stringContaining('must not be all digits or a uuid') });
    }
    expect((await lab.api('GET', '/api/v1/restores')).body).toHaveLength(before);
    // the guest those names would have been taken for is untouched
    expect((await virsh('domstate', guest!.uuid)).trim()).toBe('running');
  });

  it('instant recovery reports the bytes its copy moved; cancelled mid-copy, its domain is destroyed and undefined before its overlays go', async () => {
    // the original off: one TCG guest at a time on this machine
    await guest!.destroy();
    const name = `sendense-instant-cancel-${process.pid}`;
    host.domains.push(name);
    const res = await restore({ mode: 'instant', target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(res.status).toBe(202);
    let vdb: any;
    await lab.until(async () => (vdb = (await get(res.body.restoreId)).disks.find((d: any) => d.diskId === 'vdb')).bytesDone > 0, 120_000, 'the copy to report bytes');
    // bytes of the disk, not a percentage
    expect(vdb.bytesPlanned).toBe(vdbBytes);
    expect(vdb.bytesDone).toBeLessThan(vdbBytes);
    const uuid = (await get(res.body.restoreId)).domain?.uuid ?? (await virsh('domuuid', name)).trim();
    expect((await lab.api('POST', `/api/v1/restores/${res.body.restoreId}/cancel`)).status).toBe(202);
    const done = await waitForRestore(res.body.restoreId, 120_000);
    expect(done).toMatchObject({ status: 'cancelled' });
    expect(await leftovers(name)).toEqual(clean);
    await expect(virsh('dominfo', uuid)).rejects.toThrow(/failed to get domain/);
  }, 600_000);

  it('a restore whose domain fails to start fails saying why, leaving no domain and no file: the name is free again', async () => {
    const name = `sendense-nostart-${process.pid}`;
    host.domains.push(name);
    // the recorded domain boots a kernel of this host that is not there any more: libvirt's `start` fails
    const { kernel } = await ensureGuestImage();
    renameSync(kernel, `${kernel}.away`);
    try {
      const res = await restore({ target: { kind: 'new-domain', name, storageDir: host.storage, start: true } });
      expect(res.status).toBe(202);
      const done = await waitForRestore(res.body.restoreId);
      expect(done).toMatchObject({ status: 'failed', error: expect.stringMatching(/virsh start: .*vmlinuz/) });
      expect(await leftovers(name)).toEqual(clean);
    } finally {
      renameSync(`${kernel}.away`, kernel);
    }
  }, 600_000);

  it('two restores to one name at once: one completes with its disks in place, the other is refused or fails saying the name is taken, and removes nothing of the first', async () => {
    const name = `sendense-twice-${process.pid}`;
    host.domains.push(name);
    const [a, b] = await Promise.all([0, 1].map(() => restore({ target: { kind: 'new-domain', name, storageDir: host.storage } })));
    const accepted = [a, b].filter((r) => r.status === 202);
    const refused = [a, b].filter((r) => r.status !== 202);
    for (const r of refused) expect({ status: r.status, message: r.body.message }).toEqual({ status: 409, message: expect.stringMatching(/already exists|is restoring to domain/) });
    const ends = await Promise.all(accepted.map((r) => waitForRestore(r.body.restoreId)));
    const completed = ends.filter((e) => e.status === 'completed');
    expect(completed).toHaveLength(1);
    for (const e of ends.filter((x) => x.status !== 'completed')) expect(e).toMatchObject({ status: 'failed', error: expect.stringMatching(/already exists|is restoring to domain/) });
    process.stdout.write(`two restores to one name: ${[a, b].map((r) => r.status).join(', ')}; ${ends.map((e) => `${e.status}${e.error ? ` (${e.error})` : ''}`).join(', ')}\n`);
    // the domain defined reads files that are there and hold the point
    const xml = await virsh('dumpxml', completed[0].domain.uuid);
    for (const diskId of ['vda', 'vdb']) {
      const file = join(host.storage, `${name}-${diskId}.qcow2`);
      expect(xml).toContain(file);
      expect(existsSync(file)).toBe(true);
      const point = join(lab.repoRoot, (await lab.api('GET', `/api/v1/restore-points/${pointId}`)).body.disks.find((d: { diskId: string }) => d.diskId === diskId).file);
      await run('qemu-img', ['compare', '-U', file, point]);
    }
    await virsh('undefine', completed[0].domain.uuid, '--nvram');
    for (const f of readdirSync(host.storage).filter((x) => x.startsWith(name))) rmSync(join(host.storage, f));
  }, 600_000);

  it('an instant recovery whose domain is shut off during the copy (the plug pulled) finishes its copy offline: it completes with the domain on its own disks, which then starts without the hub', async () => {
    const name = `sendense-instant-off-${process.pid}`;
    host.domains.push(name);
    const res = await restore({ mode: 'instant', target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(res.status).toBe(202);
    let r: any;
    await lab.until(async () => (r = await get(res.body.restoreId)).phase === 'pulling' || r.status !== 'running', 240_000, 'the domain to run');
    expect(r).toMatchObject({ status: 'running', phase: 'pulling' });
    await virsh('destroy', name);
    const done = await waitForRestore(res.body.restoreId, 300_000);
    expect(done).toMatchObject({ status: 'completed', stalled: null, domain: { name, started: false } });
    const disks = readdirSync(host.storage).filter((f) => f.startsWith(`${name}-`) && f.endsWith('.qcow2'));
    expect(disks).toHaveLength(2);
    for (const f of disks) expect(JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', join(host.storage, f)])).stdout)['backing-filename']).toBeUndefined();
    expect(await virsh('dumpxml', '--inactive', name)).not.toMatch(/<backingStore[^>]*type=.network/);
    expect(await leftovers(name)).toMatchObject({ domain: true, nbdkit: [], leases: 0, agentDir: [] });
    const story = (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${res.body.restoreId}`)).body.events;
    expect(story.filter((e: { type: string }) => e.type === 'InstantRecoveryStalled').map((e: { data: { reason: string } }) => e.data.reason)).toContainEqual(expect.stringMatching(/^the domain is shut off \(destroyed\): its copy is being finished offline$/));
    expect(story.map((e: { type: string }) => e.type).slice(-2)).toEqual(['InstantRecoveryLocal', 'RestoreCompleted']);
    // on its own disks: it starts with the hub's exports and the proxies gone
    await virsh('start', name);
    expect((await virsh('domstate', name)).trim()).toBe('running');
    await virsh('destroy', name);
    await virsh('undefine', name, '--nvram');
    for (const f of readdirSync(host.storage).filter((x) => x.startsWith(name))) rmSync(join(host.storage, f));
  }, 600_000);

  it('an instant recovery whose storage fills during the copy (a loop-mounted ext4 another writer fills) waits saying why, its domain kept, and completes once space is freed', async () => {
    const image = join(host.dir, 'small.ext4');
    const mount = join(host.dir, 'small');
    mkdirSync(mount);
    // room for the point when the restore is asked for (the agent refuses less), taken by another writer once it runs
    await run('truncate', ['-s', '768M', image]);
    await run('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
    const device = (await run('losetup', ['-f', '--show', image])).stdout.trim();
    loop = { image, device, mount };
    await run('mount', [device, mount]);
    chmodSync(mount, 0o755);
    const name = `sendense-instant-full-${process.pid}`;
    host.domains.push(name);
    const res = await restore({ mode: 'instant', target: { kind: 'new-domain', name, storageDir: mount } });
    expect(res.status).toBe(202);
    const { bavail, bsize } = statfsSync(mount);
    await run('fallocate', ['-l', String(bavail * bsize - 32 * MiB), join(mount, 'filler')]);
    let stalled: any;
    await lab.until(async () => Boolean((stalled = await get(res.body.restoreId)).stalled) || stalled.status !== 'running', 240_000, 'the copy to stall');
    expect(stalled).toMatchObject({ status: 'running', phase: 'pulling', stalled: expect.stringMatching(/^the copy of vd[ab] stopped: no space left on the filesystem of /) });
    // nothing undone: the domain and its overlays are there, still reading from the hub
    const waiting = await leftovers(name, mount);
    expect(waiting).toMatchObject({ domain: true, leases: 2 });
    // the agent's journal of it and its proxies' dir, for the next agent to resume should this one stop
    expect(waiting.agentDir.sort()).toEqual([`instant-${res.body.restoreId}`, `restore-${res.body.restoreId}.json`]);
    expect(waiting.nbdkit).toHaveLength(2);
    // the operator frees space: the copy goes on by itself, and the guest qemu paused on the full disk runs again
    rmSync(join(mount, 'filler'));
    const done = await waitForRestore(res.body.restoreId, 300_000);
    expect(done).toMatchObject({ status: 'completed', stalled: null, domain: { name, started: true } });
    expect((await virsh('domstate', name)).trim()).toBe('running');
    // its definition too reads nothing from the hub: started again, it runs on its own disks
    expect(await virsh('dumpxml', '--inactive', name)).not.toMatch(/<backingStore[^>]*type=.network/);
    expect(await leftovers(name, mount)).toMatchObject({ domain: true, nbdkit: [], leases: 0, agentDir: [] });
    const story = (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${res.body.restoreId}`)).body.events.map((e: { type: string }) => e.type);
    expect(story.slice(story.indexOf('InstantRecoveryRunning'))).toEqual(expect.arrayContaining(['InstantRecoveryStalled', 'InstantRecoveryResumed']));
    expect(story.indexOf('InstantRecoveryStalled')).toBeGreaterThan(story.indexOf('InstantRecoveryRunning'));
    expect(story.indexOf('InstantRecoveryResumed')).toBeGreaterThan(story.indexOf('InstantRecoveryStalled'));
    expect(story.slice(-2)).toEqual(['InstantRecoveryLocal', 'RestoreCompleted']);
    await virsh('destroy', name);
    await virsh('undefine', name, '--nvram');
    for (const f of readdirSync(mount).filter((x) => x.startsWith(name))) rmSync(join(mount, f));
    await run('umount', [mount]);
    await run('losetup', ['-d', device]);
    loop = undefined;
  }, 600_000);
});
