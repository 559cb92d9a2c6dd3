import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { virsh } from '../fixtures/libvirt/libvirt-guest';
import { BackupLab, LAB_TOKEN } from '../support/backup-lab';
import { LibvirtHost } from '../support/libvirt-host';
import { LibvirtLab } from '../support/libvirt-lab';
import { spawnSendense } from '../support/processes';

const run = promisify(execFile);
const NETWORK = "type='network' disks are not supported (only file-backed images)";
const BLOCK = "type='block' disks are not supported (only file-backed images)";

/**
 * A VM whose disks the agent cannot all read (a Ceph or iSCSI volume, a host block device) was backed up
 * without them, and only the agent's log said so: the job completed and its point looked whole. Real libvirt,
 * shut-off domains whose other disks are defined but never opened.
 */
describe('disks a source cannot read are named by the VM, its job and its point, never left out silently', () => {
  const lab = new LibvirtLab();
  const host = new LibvirtHost('sendense-left-out-');
  const name = (tag: string) => `sendense-left-out-${tag}-${process.pid}`;
  let mixed = '';
  let networkOnly = '';

  /** A shut-off domain of the given `<disk>` elements. */
  async function define(tag: string, disks: string): Promise<string> {
    const domain = name(tag);
    host.domains.push(domain);
    const xml = join(host.dir, `${tag}.xml`);
    writeFileSync(
      xml,
      `<domain type='qemu'><name>${domain}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><devices>${disks}<memballoon model='none'/></devices></domain>`,
    );
    await virsh('define', xml);
    return (await virsh('domuuid', domain)).trim();
  }

  beforeAll(async () => {
    await host.open();
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(host.dir, 'vda.qcow2'), '16M']);
    await run('qemu-io', ['-c', 'write -P 0x5a 0 1M', join(host.dir, 'vda.qcow2')]);
    const nbd = (dev: string) => `<disk type='network' device='disk'><driver name='qemu' type='raw'/><source protocol='nbd' name='data'><host name='127.0.0.1' port='10809'/></source><target dev='${dev}' bus='virtio'/></disk>`;
    mixed = await define(
      'mixed',
      `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${host.dir}/vda.qcow2'/><target dev='vda' bus='virtio'/></disk>` +
        nbd('vdb') +
        `<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/null'/><target dev='vdc' bus='virtio'/></disk>` +
        // a CD-ROM drive holds none of the guest's data: skipping it loses nothing, and nothing says so
        `<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>`,
    );
    networkOnly = await define('network', nbd('vda'));
    lab.vmIds = [mixed, networkOnly];
    await lab.start();
  }, 300_000);

  afterAll(() => host.close(lab), 120_000);

  it("the inventory lists each such disk with the reason, and a VM with nothing readable at all instead of hiding it", async () => {
    const vms = (await lab.api('GET', '/api/v1/vms')).body as { vmId: string; disks: { diskId: string }[]; disksLeftOut: unknown[] }[];
    const shown = (vmId: string) => vms.filter((v) => v.vmId === vmId).map((v) => ({ disks: v.disks.map((d) => d.diskId), disksLeftOut: v.disksLeftOut }));
    expect(shown(mixed)).toEqual([{ disks: ['vda'], disksLeftOut: [{ diskId: 'vdb', reason: NETWORK }, { diskId: 'vdc', reason: BLOCK }] }]);
    expect(shown(networkOnly)).toEqual([{ disks: [], disksLeftOut: [{ diskId: 'vda', reason: NETWORK }] }]);
    // the morning check says it too, whatever the VM's state
    expect((await lab.protectionOf(mixed, (r) => r?.disksLeftOut?.length > 0))?.disksLeftOut).toEqual([{ diskId: 'vdb', reason: NETWORK }, { diskId: 'vdc', reason: BLOCK }]);
  });

  it('a backup completes with the disks it could read, and its job, its point and the CLI say which disks it lacks and why', async () => {
    const jobId = await lab.backup('full', mixed);
    const job = await lab.waitForJob(jobId, 120_000);
    const lacking = [{ diskId: 'vdb', reason: NETWORK }, { diskId: 'vdc', reason: BLOCK }];
    expect({ status: job.status, disks: job.disks.map((d: { diskId: string }) => d.diskId), disksLeftOut: job.disksLeftOut }).toEqual({ status: 'completed', disks: ['vda'], disksLeftOut: lacking });
    expect((await lab.events(jobId)).find((e) => e.type === 'BackupTypeDecided')?.data.disksLeftOut).toEqual(lacking);
    const point = (await lab.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).body;
    expect({ disks: point.disks.map((d: { diskId: string }) => d.diskId), disksLeftOut: point.disksLeftOut }).toEqual({ disks: ['vda'], disksLeftOut: lacking });
    // and so does its manifest in the repository, which a rescan rebuilds the point from
    expect(JSON.parse(readFileSync(join(lab.repoRoot, mixed, 'manifests', `${job.restorePointId}.json`), 'utf8')).disksLeftOut).toEqual(lacking);

    const cli = async (args: string[]) => {
      const proc = spawnSendense(args, { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
      const { code } = await proc.exited;
      return { code, output: proc.output() };
    };
    const listed = await cli(['restore-points', 'list', '--vm', mixed]);
    expect(listed).toEqual({ code: 0, output: expect.stringContaining(`disks=vda  `) });
    expect(listed.output).toContain(`LACKS vdb (${NETWORK}), vdc (${BLOCK})`);
    const waited = await cli(['backup', 'start', '--vm', mixed, '--repository', lab.repositoryId, '--type', 'full', '--wait']);
    expect(waited.code).toBe(0);
    expect(waited.output).toContain(`warning: disk vdb is not in the point: ${NETWORK}\nwarning: disk vdc is not in the point: ${BLOCK}\n`);
    expect(await lab.leftovers([mixed])).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  });

  it('a hub that syncs those points keeps what they lack: each copy, and its manifest there, names the same disks', async () => {
    const offsite = new BackupLab({ DATABASE_URL: '' });
    try {
      await offsite.startHubOnly();
      const identity = (await lab.api('GET', '/api/v1/identity')).body;
      const token = (await lab.api('POST', '/api/v1/tokens', { name: 'offsite', role: 'sync' })).body.token;
      const remote = await offsite.api('POST', '/api/v1/remotes', { name: 'primary', url: `ssh://127.0.0.1:${lab.sshPort}`, token, fingerprint: identity.ssh.hostKeyFingerprint });
      expect(remote.status).toBe(201);
      const job = await offsite.api('POST', '/api/v1/sync-jobs', { remoteId: remote.body.remoteId, repositoryId: offsite.repositoryId, remoteRepositoryId: lab.repositoryId });
      expect(job.status).toBe(201);
      const started = await offsite.api('POST', `/api/v1/sync-jobs/${job.body.syncJobId}/run`);
      expect(started.status).toBe(202);
      let run: any;
      await offsite.until(async () => {
        run = (await offsite.api('GET', `/api/v1/sync-jobs/${job.body.syncJobId}`)).body.lastRun;
        return run?.runId === started.body.runId && run.status !== 'running';
      }, 120_000, 'the sync run to end');
      const originals = ((await lab.api('GET', `/api/v1/vms/${mixed}/restore-points?repositoryId=${lab.repositoryId}`)).body as { restorePointId: string }[]).map((p) => p.restorePointId);
      expect(originals).toHaveLength(2);
      expect({ status: run.status, synced: run.synced }).toEqual({ status: 'completed', synced: originals });
      const lacking = [{ diskId: 'vdb', reason: NETWORK }, { diskId: 'vdc', reason: BLOCK }];
      const copies = (await offsite.api('GET', `/api/v1/vms/${mixed}/restore-points?repositoryId=${offsite.repositoryId}`)).body as { restorePointId: string; disks: { diskId: string }[]; disksLeftOut: unknown }[];
      expect(copies.map((p) => ({ id: p.restorePointId, disks: p.disks.map((d) => d.diskId), disksLeftOut: p.disksLeftOut }))).toEqual(originals.map((id) => ({ id, disks: ['vda'], disksLeftOut: lacking })));
      for (const id of originals) expect(JSON.parse(readFileSync(join(offsite.repoRoot, mixed, 'manifests', `${id}.json`), 'utf8')).disksLeftOut).toEqual(lacking);
    } finally {
      await offsite.close();
    }
  }, 240_000);

  it('a backup of a VM with no disk it can read fails, naming each disk and why', async () => {
    const job = await lab.waitForJob(await lab.backup('full', networkOnly), 120_000);
    expect({ status: job.status, error: job.error }).toEqual({ status: 'failed', error: expect.stringContaining(`has no disk that can be backed up: vda: ${NETWORK}`) });
    expect(await lab.leftovers([mixed, networkOnly])).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  });
});
