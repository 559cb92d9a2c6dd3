import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GuestDomain, guestHasFile, startGuest, virsh } from '../fixtures/libvirt/libvirt-guest';
import { LibvirtHost } from '../support/libvirt-host';
import { LibvirtLab } from '../support/libvirt-lab';
import { processesMentioning } from '../support/processes';

const run = promisify(execFile);

/**
 * Whole VMs back from a chunks repository (docs/design/storage.md): a running 2-disk TCG guest under a real libvirtd
 * is backed up (full + incremental) into an encrypted chunk store by a real hub and agent, restored as a new domain
 * that boots with its files, and recovered instantly from the chunk store's own NBD server while the copy runs.
 */
describe('whole-VM restore from an encrypted chunks repository (real libvirt, TCG guest)', () => {
  const host = new LibvirtHost('sendense-chunk-guests-');
  let lab: LibvirtLab;
  let guest: GuestDomain | undefined;
  let agentId = '';
  let fullId = '';
  let incId = '';

  beforeAll(async () => {
    await host.open({ storage: true });
    const key = join(host.dir, 'chunks.key');
    writeFileSync(key, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    lab = new LibvirtLab({}, {}, { layout: 'chunks', encryption: { keyFile: key } });
    guest = await startGuest({ name: `sendense-chunks-${process.pid}`, dir: join(host.dir, 'g'), agent: true, d1Mib: 160, fillD1Mib: 96 });
    lab.vmIds = [guest.uuid];
    lab.consoleLogs = [guest.console];
    await lab.start();
    agentId = await lab.agentId();
    fullId = (await lab.waitForJob(await lab.backup('full', guest.uuid), 180_000)).restorePointId;
    const name = guest.name;
    // the incremental holds the guest's 10th tick file, which the restored guest reads back
    await lab.until(() => guestHasFile(name, '/mnt/tick.9.txt'), 180_000, 'the guest to write its 10th tick file');
    const inc = await lab.waitForJob(await lab.backup('incremental', guest.uuid), 180_000);
    expect(inc).toMatchObject({ status: 'completed', type: 'incremental' });
    incId = inc.restorePointId;
  }, 600_000);

  afterAll(() => host.close(lab, { guest }), 120_000);

  const restore = (body: Record<string, unknown>) => lab.api('POST', '/api/v1/restores', { agentId, mode: 'full', ...body });
  const waitForRestore = (restoreId: string, timeoutMs?: number) => lab.waitForRestore(restoreId, timeoutMs);
  async function readGuestFile(domain: string, path: string): Promise<string> {
    const handle = JSON.parse(await virsh('qemu-agent-command', domain, `{"execute":"guest-file-open","arguments":{"path":"${path}"}}`)).return;
    try {
      return Buffer.from(JSON.parse(await virsh('qemu-agent-command', domain, `{"execute":"guest-file-read","arguments":{"handle":${handle}}}`)).return['buf-b64'], 'base64').toString();
    } finally {
      await virsh('qemu-agent-command', domain, `{"execute":"guest-file-close","arguments":{"handle":${handle}}}`);
    }
  }

  it('the points are chunk indexes in the store, not qcow2 files', async () => {
    for (const id of [fullId, incId]) {
      const point = (await lab.api('GET', `/api/v1/restore-points/${id}`)).body;
      expect(point.disks.map((d: { file: string }) => d.file)).toEqual(['vda', 'vdb'].map((d) => `chunks/points/${guest!.uuid}/${id}/${d}.idx`));
    }
  });

  it('new-domain: the incremental point restored as a new domain boots, with the files the point held', async () => {
    await guest!.destroy();
    lab.vmIds = [];
    const name = `sendense-chunks-restored-${process.pid}`;
    host.domains.push(name);
    const res = await restore({ restorePointId: incId, target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(res.status).toBe(202);
    const done = await waitForRestore(res.body.restoreId);
    expect(done).toMatchObject({ status: 'completed', error: null, domain: { name, started: false } });
    const vda = join(host.storage, `${name}-vda.qcow2`);
    const raw = join(lab.dir, 'restored-vda.raw');
    await run('qemu-img', ['convert', '-O', 'raw', vda, raw]);
    const tick = (await run('debugfs', ['-R', 'cat /tick.9.txt', raw])).stdout;
    expect(tick).toMatch(/^write \d+\n$/);
    await virsh('start', name);
    const consoleLog = join(host.storage, `${name}.console.log`);
    await lab.until(async () => existsSync(consoleLog) && readFileSync(consoleLog, 'utf8').includes('GUEST READY'), 120_000, 'the restored guest to boot');
    await lab.until(() => virsh('qemu-agent-command', name, '{"execute":"guest-ping"}').then(() => true), 60_000, "the restored guest's agent to answer");
    expect(await readGuestFile(name, '/mnt/tick.9.txt')).toBe(tick);
    await virsh('destroy', name);
  }, 600_000);

  it("instant: the new domain runs on the chunk store's export while the copy runs, and then without the hub", async () => {
    const name = `sendense-chunks-instant-${process.pid}`;
    host.domains.push(name);
    const res = await restore({ restorePointId: fullId, mode: 'instant', target: { kind: 'new-domain', name, storageDir: host.storage } });
    expect(res.status).toBe(202);
    await lab.until(async () => (await virsh('domstate', name)).trim() === 'running', 60_000, 'the instant domain to run');
    // the export it boots from is the chunk store's own server, not a qemu-nbd
    const exports = processesMentioning(lab.hubDataDir).map((p) => p.cmdline);
    expect(exports.some((c) => c.includes('chunk-nbd.main.js') && c.includes(`--point=${guest!.uuid}/${fullId}/`))).toBe(true);
    expect(exports.filter((c) => /(^|\/)qemu-nbd\s/.test(c))).toEqual([]);
    // once in a full CI run this copy failed with "stopped 10 times in a row"; the same failure, reproduced in
    // test/e2e/instant-pulls.e2e.spec.ts, was qemu 7.2 segfaulting as both disks' pulls ended, which now run one at a time
    const done = await waitForRestore(res.body.restoreId, 900_000);
    expect(done).toMatchObject({ status: 'completed', error: null, domain: { name, started: true } });
    await lab.until(() => virsh('qemu-agent-command', name, '{"execute":"guest-ping"}').then(() => true), 180_000, "the instant guest's agent to answer");
    expect(await virsh('dumpxml', name)).not.toContain("type='network'");
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
    expect(processesMentioning(lab.hubDataDir).filter((p) => p.cmdline.includes('chunk-nbd'))).toEqual([]);
    await virsh('destroy', name).catch(() => undefined);
  }, 900_000);

  it("a recovery drill boots a chunk point from the chunk store's export, passes when its guest agent answers, and leaves nothing", async () => {
    const res = await lab.api('POST', `/api/v1/restore-points/${incId}/drill`, { agentId, timeoutSeconds: 240 });
    expect(res.status).toBe(202);
    const done = await waitForRestore(res.body.restoreId, 600_000);
    expect(done).toMatchObject({ status: 'completed', mode: 'instant', target: { kind: 'drill', timeoutSeconds: 240 }, drill: { passed: true, reason: null } });
    expect(done.drill.bootMs).toBeGreaterThan(0);
    expect((await virsh('list', '--all', '--name')).split('\n').filter((n) => n.startsWith('sendense-drill-'))).toEqual([]);
    expect((await lab.api('GET', '/api/v1/nbd/ports')).body).toEqual([]);
    expect(processesMentioning(lab.hubDataDir).filter((p) => p.cmdline.includes('chunk-nbd'))).toEqual([]);
  }, 900_000);
});
