import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { domainsAtCollection, ensureLibvirt, GuestDomain, LibvirtDaemons, readSlots, slotsAt, startGuest, virsh } from '../fixtures/libvirt/libvirt-guest';
import { LAB_TOKEN } from '../support/backup-lab';
import { LibvirtLab } from '../support/libvirt-lab';
import { startFreezableRelay } from '../fixtures/tunnel/tunnel-fixtures';
import { processesMentioning, spawnSendense } from '../support/processes';

const run = promisify(execFile);

/**
 * Running VMs under libvirt, backed up through its backup API in pull mode while the guest keeps writing.
 * Real libvirtd, real TCG guests (Debian cloud kernel, busybox, qemu-guest-agent), hub and agent processes.
 */
describe('libvirt: running domains backed up with backup-begin, checkpoints and guest freeze', () => {
  const lab = new LibvirtLab();
  let stopLibvirt: (() => Promise<void>) | undefined;
  let restartLibvirtd: LibvirtDaemons['restartLibvirtd'] | undefined;
  let relay: Awaited<ReturnType<typeof startFreezableRelay>> | undefined;
  let guestDir = '';
  let withAgent: GuestDomain | undefined;
  let noAgent: GuestDomain | undefined;

  beforeAll(async () => {
    const libvirt = await ensureLibvirt();
    // .ci/run installs libvirt: a machine without it fails here rather than passing without asserting
    if (!libvirt.ok) throw new Error(`libvirt is needed: ${libvirt.reason}`);
    stopLibvirt = libvirt.stop;
    restartLibvirtd = libvirt.restartLibvirtd;
    guestDir = mkdtempSync(join(tmpdir(), 'sendense-guests-'));
    chmodSync(guestDir, 0o755);
    // one after the other: two concurrent `virsh define` calls were seen to hang libvirtd 9.0 here
    withAgent = await startGuest({ name: `sendense-e2e-ga-${process.pid}`, dir: join(guestDir, 'a'), agent: true });
    noAgent = await startGuest({ name: `sendense-e2e-noga-${process.pid}`, dir: join(guestDir, 'b'), agent: false, d1Mib: 600, fillD1Mib: 512 });
    lab.vmIds = [withAgent.uuid, noAgent.uuid];
    lab.consoleLogs = [withAgent.console, noAgent.console];
    await lab.start();
  }, 300_000);

  afterAll(async () => {
    if (lab.hub) await lab.close();
    await relay?.close();
    await withAgent?.destroy();
    await noAgent?.destroy();
    if (guestDir) rmSync(guestDir, { recursive: true, force: true });
    await stopLibvirt?.();
  }, 120_000);

  const chainFile = (file: string) => join(lab.repoRoot, file);
  async function startWhenUnlocked(vmId: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await virsh('start', vmId);
        return;
      } catch (error) {
        if (attempt === 50 || !/Failed to get "write" lock/.test((error as Error).message)) throw error;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
  /** The real CLI against the lab's hub; its stdout. */
  async function cli(args: string[]): Promise<string> {
    const proc = spawnSendense(args, { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN });
    const { code } = await proc.exited;
    if (code !== 0) throw new Error(`sendense ${args.join(' ')} exited ${code}: ${proc.output()}`);
    return proc.output();
  }
  const chainEvents = async (vmId: string) => (await lab.api('GET', `/api/v1/audit/streams/chain-${vmId}-${lab.repositoryId}?limit=1000`)).body.events as { type: string; data: any }[];

  /** The restore point's disk, read through its chain into a raw file. */
  async function exportDisk(point: any, diskId: string): Promise<string> {
    const out = join(lab.dir, `check-${point.restorePointId}-${diskId}.raw`);
    await run('qemu-img', ['convert', '-O', 'raw', chainFile(point.disks.find((d: { diskId: string }) => d.diskId === diskId).file), out]);
    return out;
  }

  /**
   * A copy of one disk read from the backup's own NBD export (libvirt's pull-mode socket in the agent's job
   * directory), taken while the job runs: the agent is stopped (SIGSTOP) from the moment the socket appears
   * until the copy is done, so the job cannot end under the reader.
   */
  async function copyFromBackupExport(jobId: string, diskId: string): Promise<string> {
    const deadline = Date.now() + 120_000;
    let socket: string | undefined;
    while (!socket) {
      if (Date.now() > deadline) throw new Error(`no backup export appeared for job ${jobId}`);
      const dirs = existsSync(lab.workDir) ? readdirSync(lab.workDir).filter((e) => e.startsWith('job-')) : [];
      socket = dirs.map((d) => join(lab.workDir, d, 'nbd.sock')).find((f) => existsSync(f));
      if (!socket) await new Promise((r) => setTimeout(r, 5));
    }
    const out = join(lab.dir, `export-${jobId}-${diskId}.raw`);
    lab.agent!.child.kill('SIGSTOP');
    try {
      // the socket exists from libvirt's nbd-server-start; the disks' exports are added right after it
      for (let attempt = 1; ; attempt++) {
        try {
          await run('nbdcopy', [`nbd+unix:///${diskId}?socket=${socket}`, out]);
          break;
        } catch (error) {
          if (attempt === 50) throw error;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      lab.agent!.child.kill('SIGCONT');
    }
    return out;
  }

  async function leftoversOnHost(vm: GuestDomain): Promise<{ job: string; jobDirs: string[]; qemuNbd: string[]; mounts: string[] }> {
    const job = (await virsh('domjobinfo', vm.uuid).catch(() => 'Job type: None')).match(/Job type:\s+(\S+)/)?.[1] ?? '';
    const jobDirs = existsSync(lab.workDir) ? readdirSync(lab.workDir).filter((e) => e.startsWith('job-') || e.startsWith('frozen-')) : [];
    const qemuNbd = processesMentioning(lab.dir).filter((p) => p.cmdline.includes('qemu-nbd')).map((p) => p.cmdline);
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(lab.dir));
    return { job, jobDirs, qemuNbd, mounts };
  }

  it('a full and two incrementals of a running 2-disk domain while the guest writes: frozen, clean ext4, one instant per point, only dirty-bitmap bytes, a file restorable', async () => {
    const vm = withAgent!;
    const points: any[] = [];
    const jobs: any[] = [];
    const exportCopies: string[] = [];
    for (const type of ['full', 'incremental', 'incremental'] as const) {
      if (jobs.length) await new Promise((r) => setTimeout(r, 3000));
      const jobId = await lab.backup(type, vm.uuid);
      exportCopies.push(await copyFromBackupExport(jobId, 'vdb'));
      const job = await lab.waitForJob(jobId, 180_000);
      expect({ status: job.status, type: job.type, error: job.error ?? null }).toEqual({ status: 'completed', type, error: null });
      jobs.push(job);
      points.push((await lab.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).body);
    }

    // every point holds the domain's definition as it was at its instant (a guest without UEFI or TPM: only the XML)
    for (const point of points) {
      expect(point.configuration).toEqual({ domainXml: true, nvram: false, tpm: false });
      const recorded = JSON.parse(readFileSync(join(lab.repoRoot, vm.uuid, 'manifests', `${point.restorePointId}.config.json`), 'utf8'));
      expect(recorded.domainXml).toContain(`<name>${vm.name}</name>`);
      expect(recorded.domainXml).toContain(`<uuid>${vm.uuid}</uuid>`);
      // the persistent definition, not the running domain's (which carries its id and runtime aliases)
      expect(recorded.domainXml).not.toMatch(/<domain[^>]*\sid=/);
    }
    const added = (await chainEvents(vm.uuid)).filter((e) => e.type === 'RestorePointAdded');
    expect(added.map((e) => [e.data.restorePointId, e.data.consistency, e.data.consistencyReason])).toEqual(points.map((p) => [p.restorePointId, 'application', null]));
    for (const e of added) expect(e.data.freezeMs).toBeGreaterThanOrEqual(0);
    // ...and in the CLI's list
    const listing = (await cli(['restore-points', 'list', '--vm', vm.uuid])).split('\n').filter(Boolean);
    expect(listing).toHaveLength(3);
    for (const [k, line] of listing.entries()) {
      expect(line.startsWith(`${points[k].restorePointId}  `)).toBe(true);
      expect(line.endsWith(`  application-consistent (guest frozen ${added[k].data.freezeMs} ms)`)).toBe(true);
    }
    // the same through the API: each point and the VM's list of points
    const listed = (await lab.api('GET', `/api/v1/vms/${vm.uuid}/restore-points`)).body as any[];
    for (const list of [points, listed]) {
      expect(list.map((p) => [p.restorePointId, p.consistency, p.consistencyReason])).toEqual(added.map((e) => [e.data.restorePointId, 'application', null]));
      for (const [k, p] of list.entries()) expect(p.freezeMs).toBe(added[k].data.freezeMs);
    }

    let previous = 0;
    for (const [k, point] of points.entries()) {
      // disk 0: the guest's ext4, frozen for the instant: it checks clean and needs no journal recovery
      const d0 = await exportDisk(point, 'vda');
      await run('e2fsck', ['-fn', d0]);
      expect((await run('dumpe2fs', ['-h', d0])).stdout).not.toMatch(/needs_recovery/);
      // disk 1: exactly the disk at one instant (every slot holds its newest write up to one sequence number)
      const vdb = await exportDisk(point, 'vdb');
      const slots = readSlots(readFileSync(vdb));
      const m = Math.max(...slots);
      expect(m).toBeGreaterThan(previous);
      expect(slots).toEqual(slotsAt(m));
      // ...and byte for byte what libvirt's export of that instant served to a reader of our own
      await expect(run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', vdb, exportCopies[k]])).resolves.toBeDefined();
      if (k > 0) {
        // the incremental moved the 64 KiB granules written since the previous point, no more
        const done = (await lab.events(jobs[k].jobId)).find((e) => e.type === 'DiskTransferCompleted' && e.data.diskId === 'vdb')!;
        expect(m - previous).toBeLessThan(256);
        expect(done.data.bytesPlanned).toBe((m - previous) * 65536);
        expect(done.data.bytesWritten + done.data.bytesZeroed).toBeLessThanOrEqual(done.data.bytesPlanned);
      }
      previous = m;
      if (k === points.length - 1) {
        // the file the guest wrote just before the snapshot's instant, through file-level restore
        const mount = await lab.api('POST', '/api/v1/restore/mounts', { restorePointId: point.restorePointId, diskId: 'vda' });
        expect(mount.status).toBe(201);
        const volume = mount.body.volumes[0].id;
        const res = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore/mounts/${mount.body.mountId}/file?volume=${volume}&path=/tick.${(m - 1) % 50}.txt`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } });
        expect(res.status).toBe(200);
        expect(await res.text()).toBe(`write ${m - 1}\n`);
        expect((await lab.api('DELETE', `/api/v1/restore/mounts/${mount.body.mountId}`)).status).toBe(200);
      }
    }

    expect((await virsh('domstate', vm.uuid)).trim()).toBe('running');
    expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
    // one checkpoint left: the newest point's, the base of the next incremental
    expect((await virsh('checkpoint-list', vm.uuid, '--name')).trim().split('\n').length).toBeLessThanOrEqual(2);
  }, 600_000);

  it('a guest without a running guest agent: the point is crash-consistent with the reason; a domain destroyed mid-transfer fails the job cleanly and the next backup succeeds', async () => {
    const vm = noAgent!;
    const full = await lab.waitForJob(await lab.backup('full', vm.uuid), 180_000);
    expect(full.status).toBe('completed');
    const added = (await chainEvents(vm.uuid)).filter((e) => e.type === 'RestorePointAdded');
    expect(added.map((e) => [e.data.consistency, e.data.freezeMs])).toEqual([['crash', null]]);
    expect(added[0].data.consistencyReason).toMatch(/freezing the guest failed: .*agent/i);
    const point = (await lab.api('GET', `/api/v1/restore-points/${full.restorePointId}`)).body;
    expect({ consistency: point.consistency, consistencyReason: point.consistencyReason, freezeMs: point.freezeMs }).toEqual({ consistency: 'crash', consistencyReason: added[0].data.consistencyReason, freezeMs: null });
    expect(await cli(['restore-points', 'list', '--vm', vm.uuid])).toContain(`  crash-consistent: ${added[0].data.consistencyReason}\n`);

    const jobId = await lab.backup('full', vm.uuid);
    await lab.until(async () => (await lab.events(jobId)).some((e) => e.type === 'DiskTransferStarted' && e.data.diskId === 'vdb'), 120_000, 'the transfer of vdb to start');
    await virsh('destroy', vm.uuid);
    const failed = await lab.waitForJob(jobId, 120_000);
    expect(failed.status).toBe('failed');
    await lab.until(async () => (await leftoversOnHost(vm)).jobDirs.length === 0, 30_000, 'the job directory to be removed');
    expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    // the checkpoint backup-begin made for the failed point is gone from libvirt too, before the next backup: left,
    // a plain checkpoint-delete would fail on it (its bitmap went with the rollback) and other tools refuse the domain
    const failedPoint = (await lab.events(jobId)).find((e) => e.type === 'BackupTypeDecided')!.data.restorePointId;
    const checkpoints = (await virsh('checkpoint-list', vm.uuid, '--name')).split('\n').map((l) => l.trim()).filter(Boolean);
    expect(checkpoints).toEqual([`sendense-${full.restorePointId}`]);
    expect(checkpoints).not.toContain(`sendense-${failedPoint}`);

    // started again, the domain continues its chain from the last point that succeeded: the failed backup's checkpoint is gone
    // (the agent rolled its bitmap back in the shut-off images before it reported the failure)
    await startWhenUnlocked(vm.uuid);
    const next = await lab.waitForJob(await lab.backup('auto', vm.uuid), 180_000);
    expect({ status: next.status, type: next.type }).toEqual({ status: 'completed', type: 'incremental' });
    expect((await lab.api('GET', `/api/v1/restore-points/${next.restorePointId}`)).body.parentId).toBe(full.restorePointId);
    expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
  }, 600_000);

  it('an agent killed (SIGKILL) mid-backup: the job fails with the reason, the next agent start aborts the backup job, removes the scratch files and thaws a guest left frozen; the next backups continue the chains', async () => {
    const big = noAgent!;
    const frozen = withAgent!;
    const pointsOf = async (vmId: string) => (await lab.api('GET', `/api/v1/vms/${vmId}/restore-points?repositoryId=${lab.repositoryId}`)).body as { restorePointId: string }[];
    const lastOfBig = (await pointsOf(big.uuid)).at(-1)!.restorePointId;
    const lastOfFrozen = (await pointsOf(frozen.uuid)).at(-1)!.restorePointId;
    const fsfreezeStatus = async () => JSON.parse(await virsh('qemu-agent-command', frozen.uuid, '{"execute":"guest-fsfreeze-status"}')).return as string;

    const jobId = await lab.backup('full', big.uuid);
    await lab.until(async () => (await lab.events(jobId)).some((e) => e.type === 'DiskTransferStarted' && e.data.diskId === 'vdb'), 120_000, 'the transfer of vdb to start');
    await lab.stop(lab.agent, 'SIGKILL');
    const failed = await lab.waitForJob(jobId, 60_000);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/agent/i);
    // what the dead agent left: the domain's backup job with its export and scratch files, and its checkpoint
    const left = await leftoversOnHost(big);
    expect(left.job).not.toBe('None');
    expect(left.jobDirs).toHaveLength(1);
    const checkpoints = async () => (await virsh('checkpoint-list', big.uuid, '--name')).split('\n').map((l) => l.trim()).filter(Boolean);
    const killedCheckpoint = `sendense-${failed.restorePointId}`;
    expect(failed.restorePointId).toBeTruthy();
    expect(await checkpoints()).toContain(killedCheckpoint);
    // and what an agent killed between freeze and thaw leaves: a frozen guest and the agent's marker naming it
    await virsh('domfsfreeze', frozen.uuid);
    writeFileSync(join(lab.workDir, `frozen-${frozen.uuid}`), `${new Date().toISOString()}\n`);
    expect(await fsfreezeStatus()).toBe('frozen');

    await lab.startAgent();
    await lab.until(async () => (await leftoversOnHost(big)).job === 'None', 30_000, 'the backup job to be aborted');
    expect(await leftoversOnHost(big)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
    expect(await fsfreezeStatus()).toBe('thawed');
    expect(existsSync(join(lab.workDir, `frozen-${frozen.uuid}`))).toBe(false);
    // no restore point refers to the killed backup's checkpoint: gone at the start, the recorded point's kept
    expect(await checkpoints()).not.toContain(killedCheckpoint);
    expect(await checkpoints()).toContain(`sendense-${lastOfBig}`);
    expect(lab.agent!.output()).toContain(`deleted checkpoints of unfinished backups: ${big.uuid}/${killedCheckpoint}`);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });

    // the next backups build on the last points that succeeded: the killed backup's checkpoint adds no gap
    for (const [vm, last] of [[big, lastOfBig], [frozen, lastOfFrozen]] as const) {
      const next = await lab.waitForJob(await lab.backup('auto', vm.uuid), 180_000);
      expect({ status: next.status, type: next.type, error: next.error ?? null }).toEqual({ status: 'completed', type: 'incremental', error: null });
      const point = (await lab.api('GET', `/api/v1/restore-points/${next.restorePointId}`)).body;
      expect(point.parentId).toBe(last);
      expect(point.consistency).toBe(vm === frozen ? 'application' : 'crash');
      expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
    }
    // the incremental of the domain the guest writes into is still one instant of its disk
    const point = (await lab.api('GET', `/api/v1/restore-points/${(await pointsOf(frozen.uuid)).at(-1)!.restorePointId}`)).body;
    const slots = readSlots(readFileSync(await exportDisk(point, 'vdb')));
    expect(slots).toEqual(slotsAt(Math.max(...slots)));
    expect((await virsh('domstate', big.uuid)).trim()).toBe('running');
  }, 600_000);

  it('a domain shut off between backups: backed up from its image files continuing the chain, exactly what the images hold; started again, the next live backup is a full with ChainBroken and its reason, never an incremental with a gap', async () => {
    const vm = noAgent!;
    const points = async () => (await lab.api('GET', `/api/v1/vms/${vm.uuid}/restore-points?repositoryId=${lab.repositoryId}`)).body as { restorePointId: string }[];
    const lastLive = (await points()).at(-1)!.restorePointId;

    await virsh('destroy', vm.uuid);
    const offline = await lab.waitForJob(await lab.backup('auto', vm.uuid), 180_000);
    expect({ status: offline.status, type: offline.type, error: offline.error ?? null }).toEqual({ status: 'completed', type: 'incremental', error: null });
    const offPoint = (await lab.api('GET', `/api/v1/restore-points/${offline.restorePointId}`)).body;
    expect(offPoint.parentId).toBe(lastLive);
    // With the domain off its images hold still: the point, read through its whole chain, is exactly them.
    for (const [i, diskId] of ['vda', 'vdb'].entries()) {
      const copy = await exportDisk(offPoint, diskId);
      await expect(run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', copy, vm.disks[i]])).resolves.toBeDefined();
    }

    await startWhenUnlocked(vm.uuid);
    const liveJob = await lab.backup('auto', vm.uuid);
    const live = await lab.waitForJob(liveJob, 180_000);
    expect({ status: live.status, type: live.type, error: live.error ?? null }).toEqual({ status: 'completed', type: 'full', error: null });
    // Why it is a full is on the job's record: libvirt holds no checkpoint of a point taken from the image files.
    const decided = (await lab.events(liveJob)).find((e) => e.type === 'BackupTypeDecided');
    expect(decided?.data).toMatchObject({ type: 'full', reason: expect.stringContaining(`checkpoint sendense-${offline.restorePointId} does not exist`) });
    // ...and the chain ends at the offline point on the record, with the same reason.
    const broken = (await chainEvents(vm.uuid)).filter((e) => e.type === 'ChainBroken');
    expect(broken.at(-1)?.data).toEqual({ restorePointId: offline.restorePointId, reason: expect.stringContaining(`change tracking cannot continue from ${offline.restorePointId}: checkpoint sendense-${offline.restorePointId} does not exist`) });
    expect((await lab.api('GET', `/api/v1/restore-points/${live.restorePointId}`)).body.parentId).toBeNull();
    expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    expect((await virsh('domstate', vm.uuid)).trim()).toBe('running');
  }, 600_000);
  /** A full of the domain with the 600 MiB disk, interrupted once vdb's transfer runs; the next backup must be correct. */
  async function interruptedFull(interrupt: (jobId: string) => Promise<void>): Promise<{ job: any; last: string | undefined }> {
    const vm = noAgent!;
    const last = ((await lab.api('GET', `/api/v1/vms/${vm.uuid}/restore-points?repositoryId=${lab.repositoryId}`)).body as { restorePointId: string }[]).at(-1)?.restorePointId;
    const jobId = await lab.backup('full', vm.uuid);
    await lab.until(async () => (await lab.events(jobId)).some((e) => e.type === 'DiskTransferStarted' && e.data.diskId === 'vdb'), 120_000, 'the transfer of vdb to start');
    await interrupt(jobId);
    return { job: await lab.waitForJob(jobId, 240_000), last };
  }

  /** The next backup of the domain: completed, an incremental on `parent`, its vdb one instant of the guest's writes. */
  async function nextBackupIsCorrect(parent: string): Promise<void> {
    const vm = noAgent!;
    const next = await lab.waitForJob(await lab.backup('auto', vm.uuid), 180_000);
    expect({ status: next.status, type: next.type, error: next.error ?? null }).toEqual({ status: 'completed', type: 'incremental', error: null });
    const point = (await lab.api('GET', `/api/v1/restore-points/${next.restorePointId}`)).body;
    expect(point.parentId).toBe(parent);
    const slots = readSlots(readFileSync(await exportDisk(point, 'vdb')));
    expect(slots).toEqual(slotsAt(Math.max(...slots)));
    expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
  }

  it('a backup cancelled mid-transfer: the job fails as cancelled, the backup job on the domain is aborted, its scratch files and checkpoint go, and the next backup continues from the last point that succeeded', async () => {
    const vm = noAgent!;
    const { job, last } = await interruptedFull(async (jobId) => {
      expect((await lab.api('POST', `/api/v1/backups/${jobId}/cancel`)).status).toBe(202);
    });
    expect(job).toMatchObject({ status: 'failed', error: 'cancelled', cancelRequested: true });
    await lab.until(async () => (await leftoversOnHost(vm)).jobDirs.length === 0, 30_000, 'the job directory to be removed');
    expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    await lab.until(async () => !(await virsh('checkpoint-list', vm.uuid, '--name')).includes(`sendense-${job.restorePointId}`), 30_000, "the cancelled backup's checkpoint to be deleted");
    await nextBackupIsCorrect(last!);
  }, 600_000);

  it('the tunnel cut mid-transfer: the job fails with the reason, the backup job on the domain is ended and its scratch files removed; once the network is back the agent reconnects and the next backup continues the chain', async () => {
    const vm = noAgent!;
    // the agent dials the hub's SSH port through a relay the test can cut
    relay = await startFreezableRelay(0, lab.sshPort);
    await lab.stop(lab.agent);
    const stateFile = join(lab.dir, 'agent', 'agent.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    writeFileSync(stateFile, JSON.stringify({ ...state, ssh: { ...state.ssh, port: relay.port } }));
    await lab.startAgent();

    const { job, last } = await interruptedFull(async () => relay!.cut());
    expect(job.status).toBe('failed');
    expect(job.error).toMatch(/agent disconnected/);
    // the agent, cut off from the hub, still ends what it started on the host
    await lab.until(async () => {
      const left = await leftoversOnHost(vm);
      return left.job === 'None' && left.jobDirs.length === 0;
    }, 60_000, 'the backup job on the domain to end');
    expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });

    relay.thaw();
    await lab.until(async () => ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string; agentConnected: boolean }[]).some((v) => v.vmId === vm.uuid && v.agentConnected), 60_000, 'the agent to reconnect');
    await nextBackupIsCorrect(last!);
    expect((await virsh('domstate', vm.uuid)).trim()).toBe('running');
  }, 600_000);

  // The restart stops libvirtd under every domain it runs: with a domain of someone else's listed before this
  // file's own exist, the test is skipped (and counted so) rather than disturbing it; one that appears later fails it.
  const foreignDomains = domainsAtCollection();
  if (foreignDomains.length) process.stdout.write(`libvirtd away: skipped, libvirtd also runs ${foreignDomains.join(', ')}\n`);
  (foreignDomains.length ? it.skip : it)('libvirtd away from mid-transfer until after it: the copy goes on, the agent waits for libvirtd to end the backup job, the point completes, nothing is left on the domain, and the next backup is correct', async () => {
    const vm = noAgent!;
    const libvirtdBefore = Number(readFileSync('/run/libvirtd.pid', 'utf8').trim());
    const { job } = await interruptedFull(async (jobId) => {
      await restartLibvirtd!([withAgent!.name, noAgent!.name], async () => {
        expect(existsSync(`/proc/${libvirtdBefore}`)).toBe(false);
        // qemu keeps the job and its export without libvirtd: the copy ends while libvirtd is still away
        await lab.until(async () => (await lab.events(jobId)).some((e) => e.type === 'DiskTransferCompleted' && e.data.diskId === 'vdb'), 120_000, 'the transfer of vdb to end');
        await new Promise((r) => setTimeout(r, 3000));
        expect((await lab.job(jobId)).status).toBe('running');
      });
    });
    expect({ status: job.status, error: job.error ?? null }).toEqual({ status: 'completed', error: null });
    // a new libvirtd, whichever one ran before
    expect(Number(readFileSync('/run/libvirtd.pid', 'utf8').trim())).not.toBe(libvirtdBefore);
    expect(lab.agent!.output()).toMatch(/libvirt does not answer .*waiting for it to end the backup job/);
    await lab.until(async () => (await leftoversOnHost(vm)).jobDirs.length === 0, 60_000, 'the job directory to be removed');
    expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    expect((await virsh('domstate', vm.uuid)).trim()).toBe('running');
    await nextBackupIsCorrect(job.restorePointId);
  }, 600_000);
  it("the domain's qemu killed (as in a host crash) and the domain started again: libvirt still lists the checkpoint qemu never saved, the next backup is a full with ChainBroken and the reason instead of failing in backup-begin, and the one after it continues from that full", async () => {
    const vm = noAgent!;
    const last = ((await lab.api('GET', `/api/v1/vms/${vm.uuid}/restore-points?repositoryId=${lab.repositoryId}`)).body as { restorePointId: string }[]).at(-1)!.restorePointId;
    expect(await virsh('checkpoint-list', vm.uuid, '--name')).toContain(`sendense-${last}`);
    process.kill(Number(readFileSync(`/run/libvirt/qemu/${vm.name}.pid`, 'utf8').trim()), 'SIGKILL');
    await lab.until(async () => (await virsh('domstate', vm.uuid)).trim() === 'shut off', 30_000, 'libvirt to see the domain die');
    await virsh('start', vm.uuid);
    expect(await virsh('checkpoint-list', vm.uuid, '--name')).toContain(`sendense-${last}`);

    const jobId = await lab.backup('auto', vm.uuid);
    const full = await lab.waitForJob(jobId, 180_000);
    expect({ status: full.status, type: full.type, error: full.error ?? null }).toEqual({ status: 'completed', type: 'full', error: null });
    const why = `checkpoint sendense-${last} is broken: qemu holds no bitmap for vda, vdb`;
    expect((await lab.events(jobId)).find((e) => e.type === 'BackupTypeDecided')?.data).toMatchObject({ type: 'full', reason: expect.stringContaining(why) });
    expect((await chainEvents(vm.uuid)).filter((e) => e.type === 'ChainBroken').at(-1)?.data).toEqual({ restorePointId: last, reason: `change tracking cannot continue from ${last}: ${why} (the domain's qemu ended without saving it: killed, or the host crashed)` });
    // the job's read model says completed; the chain's read model may apply the point a moment later
    await lab.until(async () => (await lab.api('GET', `/api/v1/restore-points/${full.restorePointId}`)).status === 200, 30_000, 'the restore point to be listed');
    expect((await lab.api('GET', `/api/v1/restore-points/${full.restorePointId}`)).body.parentId).toBeNull();

    const next = await lab.waitForJob(await lab.backup('auto', vm.uuid), 180_000);
    expect({ status: next.status, type: next.type, error: next.error ?? null }).toEqual({ status: 'completed', type: 'incremental', error: null });
    expect((await lab.api('GET', `/api/v1/restore-points/${next.restorePointId}`)).body.parentId).toBe(full.restorePointId);
    // the broken checkpoint went once the full was recorded
    const left = (await virsh('checkpoint-list', vm.uuid, '--name')).split('\n').map((l) => l.trim()).filter(Boolean);
    expect(left).not.toContain(`sendense-${last}`);
    expect(left).toContain(`sendense-${next.restorePointId}`);
    expect(await leftoversOnHost(vm)).toEqual({ job: 'None', jobDirs: [], qemuNbd: [], mounts: [] });
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }, 600_000);
});
