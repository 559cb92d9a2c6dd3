import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { virsh } from '../fixtures/libvirt/libvirt-guest';
import { LibvirtHost } from '../support/libvirt-host';
import { LibvirtLab } from '../support/libvirt-lab';

const run = promisify(execFile);

/**
 * What a restore request can be refused for before it is recorded, asked of the agent on the real libvirt host:
 * a storage dir that is no directory it can write into, a replaced domain whose disks are gone or which the host
 * does not have. Each is a 4xx naming the reason (never a 202 that fails later, never a 500), and nothing is
 * recorded or made.
 */
describe('restore requests the target host cannot take are refused before they are recorded', () => {
  const lab = new LibvirtLab();
  const host = new LibvirtHost('sendense-prechecks-');
  let agentId = '';
  let vmId = '';
  let pointId = '';
  let disk = '';
  const domain = `sendense-prechecks-${process.pid}`;

  beforeAll(async () => {
    await host.open();
    disk = join(host.dir, 'b.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 4M', disk]);
    writeFileSync(
      join(host.dir, 'd.xml'),
      `<domain type='qemu'><name>${domain}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk><memballoon model='none'/></devices></domain>`,
    );
    await virsh('define', join(host.dir, 'd.xml'));
    host.domains.push(domain);
    vmId = (await virsh('domuuid', domain)).trim();
    lab.vmIds = [vmId];
    await lab.start();
    agentId = await lab.agentId();
    pointId = (await lab.waitForJob(await lab.backup('full', vmId), 120_000)).restorePointId;
  }, 300_000);

  afterAll(() => host.close(lab), 120_000);

  const restore = (target: Record<string, unknown>) => lab.api('POST', '/api/v1/restores', { restorePointId: pointId, agentId, mode: 'full', target });
  /** What a refusal must leave as it was: the restores listed, and every restore stream of the event store. */
  const recorded = async () => ({
    restores: (await lab.api('GET', '/api/v1/restores')).body.length,
    events: (await lab.api('GET', '/api/v1/audit/events?streamPrefix=vm-restore-&limit=1000')).body.events.length,
  });

  it('a storage dir that is a file, missing, read-only, too small, in /proc, /sys or /dev (or a link into them), or too long: a 4xx naming it, nothing recorded, nothing made', async () => {
    const file = join(host.dir, 'a-file');
    writeFileSync(file, 'x');
    const missing = join(host.dir, 'missing', 'deeper');
    const readOnly = join(host.dir, 'read-only');
    mkdirSync(readOnly);
    await run('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnly]);
    const small = join(host.dir, 'small');
    mkdirSync(small);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
    const intoSys = join(host.dir, 'into-sys');
    symlinkSync('/sys/kernel', intoSys);
    const before = await recorded();
    try {
      const cases: [string, number, RegExp][] = [
        [file, 422, /storageDir .*a-file is not a directory/],
        [missing, 422, /storageDir .*missing\/deeper does not exist/],
        [readOnly, 422, /storageDir .*read-only is not writable/],
        // the point's 4 MiB of data, as the hub measured them, against the 2 MiB the directory has
        [small, 422, /not enough space in .*small: disk\(s\) vda of the point need [45]\.\d MiB \(qemu-img measure on the hub\), 2\.0 MiB are free/],
        [intoSys, 422, /storageDir .*into-sys is \/sys\/kernel, in \/sys/],
        ['/proc', 400, /storageDir may not be in \/proc, \/sys or \/dev/],
        ['/sys/kernel', 400, /storageDir may not be in \/proc, \/sys or \/dev/],
        ['/dev/shm', 400, /storageDir may not be in \/proc, \/sys or \/dev/],
        [`${host.dir}/${'s'.repeat(300)}`, 400, /storageDir .*at most 255 characters each/],
        [`${host.dir}/${'a/'.repeat(2100)}x`, 400, /storageDir .*at most 1024 characters/],
      ];
      const answers = [];
      for (const [storageDir] of cases) {
        const res = await restore({ kind: 'new-domain', name: `${domain}-copy`, storageDir });
        answers.push({ storageDir: storageDir.slice(0, 80), status: res.status, message: String(res.body.message).slice(0, 300) });
      }
      expect(answers).toEqual(cases.map(([storageDir, status, message]) => ({ storageDir: storageDir.slice(0, 80), status, message: expect.stringMatching(message) })));
      expect(await recorded()).toEqual(before);
      expect(existsSync(join(host.dir, 'missing'))).toBe(false);
      expect(await virsh('domuuid', `${domain}-copy`).then(() => true, () => false)).toBe(false);
    } finally {
      await run('umount', [readOnly]);
      await run('umount', [small]);
    }

    // the same request into a directory that can take it is accepted and completes
    const good = join(host.dir, 'restored');
    mkdirSync(good);
    host.domains.push(`${domain}-copy`);
    const res = await restore({ kind: 'new-domain', name: `${domain}-copy`, storageDir: good });
    expect(res.status).toBe(202);
    await lab.until(async () => (await lab.api('GET', `/api/v1/restores/${res.body.restoreId}`)).body.status !== 'running', 120_000, 'the restore to end');
    expect((await lab.api('GET', `/api/v1/restores/${res.body.restoreId}`)).body).toMatchObject({ status: 'completed', domain: { name: `${domain}-copy` } });
  }, 300_000);

  it("replace of a domain whose disk was moved away is 409 naming the file, and of a domain this host does not have 404; nothing recorded, the host's files untouched", async () => {
    const before = await recorded();
    renameSync(disk, `${disk}.moved`);
    try {
      const moved = await restore({ kind: 'replace', vmId });
      expect({ status: moved.status, message: moved.body.message }).toEqual({ status: 409, message: `domain ${domain} has no file ${disk} for its disk vda (moved or removed?): put it back, or restore the point as a new domain` });
    } finally {
      renameSync(`${disk}.moved`, disk);
    }
    await virsh('undefine', domain);
    const gone = await restore({ kind: 'replace', vmId });
    expect({ status: gone.status, message: gone.body.message }).toEqual({ status: 404, message: `VM ${vmId} is not a domain of this agent's libvirt (qemu:///system): restore the point as a new domain` });
    expect(await recorded()).toEqual(before);
    expect((await run('ls', [host.dir])).stdout.split('\n').filter((f) => f.includes('sendense-restore'))).toEqual([]);
  }, 120_000);
});
