import { randomUUID } from 'node:crypto';
import { chmod, chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Consistency, DiskLeftOut } from '../../../wire/backup-protocol';
import type { VmConfiguration } from '../../../wire/vm-configuration';
import { EndingSnapshot, type BackupSource, type SourceSnapshot } from '../backup-source';
import { QemuImageSource } from '../qemu-image';
import { Virsh } from './virsh';
import { leftOutText, type CompleteBackupRequest, type DiskProblem, type InventoryScan, type InventoryVm, type OpenSnapshotOptions, type PrepareBackupRequest, type PreparedBackup, type SnapshotDisk, type SourceDisk, type SourceVm } from '../qemu-image/types';
import { backupSocket, backupXml, checkpointDisks, checkpointDisksWithoutBitmap, checkpointXml, decideLive, hasEmulatedTpm, holdsNoData, nvramPath, parseDomainXml, skipReason, type DomainInfo, type LiveChainState } from './domain-xml';
import { KeyedMutex } from '../../../process/keyed-mutex';
import { imageSummary } from '../../../qemu/qemu-img';
import { Refusal } from '../../refusal';

export interface LibvirtSourceOptions {
  /** libvirt connection URI. Default `qemu:///system`. */
  uri?: string;
  /** Where per-backup directories (NBD socket, scratch files) and freeze markers live: the agent's state dir. */
  workDir: string;
  virshBinary?: string;
  /** Time limit of one virsh call. Default 60 s. */
  commandTimeoutMs?: number;
  /** How long ending a backup job waits for a libvirtd that does not answer (restarting). Default 120 s. */
  libvirtWaitMs?: number;
  /** After that, how often the job is tried again in the background, until libvirtd answers. Default 5 s. */
  endRetryMs?: number;
  /** Time the guest agent gets to freeze the guest's filesystems. Default 10 s. */
  freezeTimeoutMs?: number;
  /** How often a guest whose thaw kept failing is tried again, for as long as it stays frozen. Default 10 s. */
  thawRetryMs?: number;
  /** Where swtpm keeps each domain's TPM state (`<dir>/<uuid>/...`). Default /var/lib/libvirt/swtpm. */
  swtpmDir?: string;
  /** Checkpoint (and bitmap) name prefix. The qemu-image driver uses the same one, so a chain continues across power states. */
  prefix?: string;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

/** Measured around `backup-begin`: how long the guest stayed frozen, and how long the line of freeze, begin and thaw took (begin alone when the guest was not frozen). */
export interface LiveTimings {
  freezeMs: number | null;
  backupBeginMs: number;
}

interface PendingLive {
  newPointId: string;
  sincePointId: string | null;
  mode: 'full' | 'incremental';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EXPORT_BITMAP = (target: string) => `backup-${target}`;
const FREEZE_MARKER = 'frozen-';
const JOB_DIR = 'job-';
/** The retries of a guest's thaw: the next one's timer, and the one under way. */
interface ThawLoop {
  timer: NodeJS.Timeout;
  attempt: Promise<void>;
}
/** In a job directory: the domain and the checkpoint the job creates. */
const JOB_CHECKPOINT = 'checkpoint.json';

/**
 * The disks of an instant recovery still reading from the hub. qemu ends each one's copy on its own schedule,
 * changing the domain's block nodes, and Debian's qemu 7.2 segfaults (`segfault at 40`) when asked to describe any
 * of them meanwhile (domblkinfo of any disk, a checkpoint's size): with the inventory scanned back to back, 4
 * recovered domains of 5 died as a copy ended, and 4 of 6 when only the disks still copying were left alone. No
 * lock can be held around a moment qemu picks; libvirt drops a disk's network backing from its XML only once
 * qemu is done with it. So while any disk reads from the hub, the domain is described from its files.
 */
function copying(info: DomainInfo): string[] {
  return info.disks.filter((d) => d.readsFromNetwork).map((d) => d.target);
}

/** A backup asks qemu about the domain's block nodes (backup-begin, a checkpoint's size): not while a copy runs. */
function refuseWhileCopying(info: DomainInfo): void {
  const still = copying(info);
  if (still.length) throw new Refusal(409, `domain ${info.name} is still copying ${still.join(', ')} from the hub (an instant recovery): back it up once the copy has ended`);
}

/**
 * Source driver for the domains of a libvirt host. A running domain is backed up through libvirt's backup
 * API in pull mode: one `backup-begin` gives one instant for all disks, exported over NBD on a Unix socket,
 * with a checkpoint per backup as the base of the next incremental. A shut-off domain is backed up from its
 * image files by the qemu-image driver. docs/operations.md (libvirt) says what an operator sees of it.
 */
export class LibvirtSource implements BackupSource {
  readonly uri: string;
  private readonly shell: Virsh;
  private readonly prefix: string;
  /** Shut-off domains, as the qemu-image driver's inventory (it reads this document on every call). */
  private readonly offlineInventory: { vms: InventoryVm[] } = { vms: [] };
  private readonly offline: QemuImageSource;
  private readonly pending = new Map<string, PendingLive>();
  private readonly snapshots = new Map<string, EndingSnapshot>();
  /** The timings of the last live snapshot of each domain (benchmarks read them). */
  readonly timings = new Map<string, LiveTimings>();
  /**
   * Per domain, one at a time: what makes its qemu open or close block nodes (backup-begin, ending the job) and what
   * makes it describe them (domblkinfo, a checkpoint's size). Debian's qemu 7.2 aborts the domain
   * (`qcow2_get_specific_info: Assertion 'false' failed`) when it describes a qcow2 node still opening; the
   * inventory scan every few seconds met a backup's start so twice in test runs, and the guest died.
   */
  private readonly blockNodes = new KeyedMutex();
  /** Guests whose thaw kept failing, tried again until they thaw (a guest left frozen is an outage), by domain. */
  private readonly stillFrozen = new Map<string, ThawLoop>();
  /** Backup jobs whose end libvirtd did not answer in time, tried again until it does, by job directory. */
  private readonly endingLater = new Map<string, NodeJS.Timeout>();
  private get endRetryMs(): number {
    return this.opts.endRetryMs ?? 5_000;
  }

  constructor(private readonly opts: LibvirtSourceOptions) {
    this.uri = opts.uri ?? 'qemu:///system';
    this.shell = new Virsh(opts.virshBinary ?? 'virsh', this.uri);
    this.prefix = opts.prefix ?? 'sendense-';
    this.offline = new QemuImageSource({ inventory: this.offlineInventory, runDir: opts.workDir, bitmapPrefix: this.prefix });
  }

  // ------------------------------------------------------------------ virsh

  virsh(args: string[], timeoutMs = this.opts.commandTimeoutMs ?? 60_000): Promise<string> {
    return this.shell.run(args, timeoutMs);
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.opts.log?.(level, message);
  }

  // -------------------------------------------------------------- inventory

  async domain(vmId: string): Promise<{ info: DomainInfo; running: boolean }> {
    const state = (await this.virsh(['domstate', vmId]).catch((e: Error) => {
      throw new Error(`VM ${vmId} is not a domain of ${this.uri}: ${e.message}`);
    })).trim();
    const info = parseDomainXml(await this.virsh(['dumpxml', vmId]));
    return { info, running: state === 'running' || state === 'paused' };
  }

  /**
   * A disk as the hub sees it. `fromFiles`: its capacity is read from the image's header, not asked of qemu (see
   * `copying`).
   */
  private async diskOf(vmId: string, disk: DomainInfo['disks'][number], fromFiles: boolean): Promise<SourceDisk> {
    const format = disk.format as 'qcow2' | 'raw';
    const capacity = fromFiles ? (await imageSummary(disk.file!, { format, shareLocks: true })).virtualSize : await this.capacity(vmId, disk.target);
    return { id: disk.target, path: disk.file!, format, virtualSize: capacity, changeTracking: format === 'qcow2' ? 'dirty-bitmap' : 'none' };
  }

  private async capacity(vmId: string, target: string): Promise<number> {
    const out = await this.blockNodes.run(vmId, () => this.virsh(['domblkinfo', vmId, target]));
    const capacity = Number(/Capacity:\s+(\d+)/.exec(out)?.[1]);
    if (!Number.isFinite(capacity)) throw new Error(`domblkinfo gave no capacity for ${target}`);
    return capacity;
  }

  async scanInventory(): Promise<InventoryScan> {
    const uuids = (await this.virsh(['list', '--all', '--uuid'])).split('\n').map((l) => l.trim()).filter(Boolean);
    const vms: SourceVm[] = [];
    const problems: DiskProblem[] = [];
    for (const uuid of uuids) {
      try {
        const vm = await this.describe(uuid, problems);
        // a domain with data on disks that cannot be read is listed, so that it is seen to be unprotected
        if (vm.disks.length || vm.leftOut) vms.push(vm);
      } catch (error) {
        // A domain undefined between list and dumpxml: it is simply gone.
        this.log('warn', `domain ${uuid} could not be inspected: ${(error as Error).message}`);
      }
    }
    return { vms, problems };
  }

  private async describe(vmId: string, problems: DiskProblem[]): Promise<SourceVm> {
    const { info } = await this.domain(vmId);
    const disks: SourceDisk[] = [];
    const leftOut: DiskLeftOut[] = [];
    const fromFiles = copying(info).length > 0;
    for (const d of info.disks) {
      const why = skipReason(d);
      if (!why) disks.push(await this.diskOf(info.uuid, d, fromFiles));
      else {
        problems.push({ vmId: info.uuid, diskId: d.target, path: d.file ?? '', message: `skipped: ${why}` });
        if (!holdsNoData(d)) leftOut.push({ diskId: d.target || '(no target)', reason: why });
      }
    }
    return { id: info.uuid, name: info.name, disks, ...(leftOut.length ? { leftOut } : {}) };
  }

  async listVms(): Promise<SourceVm[]> {
    return (await this.scanInventory()).vms;
  }

  async getVm(vmId: string): Promise<SourceVm> {
    const vm = await this.describe(vmId, []);
    if (!vm.disks.length) throw new Error(`domain ${vm.name} (${vmId}) has no disk that can be backed up${leftOutText(vm)}`);
    return vm;
  }

  // -------------------------------------------------------- change tracking

  /**
   * Our checkpoints with the disks they hold bitmaps on. libvirt's metadata is the authority while the domain
   * runs: qemu keeps new persistent bitmaps in memory and writes them into the image only when it closes it.
   */
  private async liveCheckpoints(vmId: string, since: string | null): Promise<LiveChainState['checkpoints']> {
    const names = await this.checkpointNames(vmId);
    const checkpoints: LiveChainState['checkpoints'] = [];
    for (const name of names) {
      // the base of the incremental is also checked against what qemu holds, the others need not be
      const dump = () => this.virsh(['checkpoint-dumpxml', vmId, name, '--no-domain', ...(name === since ? ['--size'] : [])]);
      // --size asks qemu about its block nodes
      const xml = name === since ? await this.blockNodes.run(vmId, dump) : await dump();
      checkpoints.push({ name, disks: checkpointDisks(xml), ...(name === since ? { lostBitmaps: checkpointDisksWithoutBitmap(xml) } : {}) });
    }
    return checkpoints;
  }

  async checkChain(vmId: string, sincePointId: string): Promise<{ ok: boolean; reason?: string; broken?: boolean }> {
    const { info, running } = await this.domain(vmId);
    refuseWhileCopying(info);
    if (!running) return this.offlineCall(vmId, () => this.offline.checkChain(vmId, sincePointId));
    const vm = await this.getVm(vmId);
    const since = this.prefix + sincePointId;
    const decision = decideLive({ disks: vm.disks.map((d) => ({ target: d.id, format: d.format })), checkpoints: await this.liveCheckpoints(vmId, since) }, since);
    // a domain with a raw disk is backed up in fulls only: it has no change tracking to lose
    return decision.mode === 'incremental' ? { ok: true } : { ok: false, reason: decision.reason!, broken: vm.disks.every((d) => d.format === 'qcow2') };
  }

  async prepareBackup(vmId: string, req: PrepareBackupRequest): Promise<PreparedBackup> {
    const { info, running } = await this.domain(vmId);
    refuseWhileCopying(info);
    if (!running) {
      this.pending.delete(vmId);
      return this.offlineCall(vmId, () => this.offline.prepareBackup(vmId, req));
    }
    const vm = await this.getVm(vmId);
    const since = req.sincePointId === null ? null : this.prefix + req.sincePointId;
    const decision = decideLive({ disks: vm.disks.map((d) => ({ target: d.id, format: d.format })), checkpoints: await this.liveCheckpoints(vmId, since) }, since);
    const mode = decision.mode;
    this.pending.set(vmId, { newPointId: req.newPointId, sincePointId: req.sincePointId, mode });
    return {
      vmId,
      newPointId: req.newPointId,
      sincePointId: req.sincePointId,
      mode,
      ...(decision.reason ? { reason: decision.reason } : {}),
      disks: vm.disks.map((d) => ({ diskId: d.id, mode, ...(mode === 'incremental' ? { bitmap: EXPORT_BITMAP(d.id) } : {}), ...(d.format === 'qcow2' ? { newBitmap: this.prefix + req.newPointId } : {}) })),
      bitmaps: mode === 'incremental' ? Object.fromEntries(vm.disks.map((d) => [d.id, EXPORT_BITMAP(d.id)])) : {},
    };
  }

  /**
   * success (the hub recorded the point): every other checkpoint of ours goes, this one is the base.
   * failure: this backup's checkpoint is deleted; libvirt merges its bitmap into its parent, so the last
   * recorded point's checkpoint still covers every change since its instant.
   */
  async completeBackup(vmId: string, req: CompleteBackupRequest): Promise<unknown> {
    const { running } = await this.domain(vmId);
    const mine = this.prefix + req.newPointId;
    if (!running) {
      const rolledBack = await this.offlineCall(vmId, () => this.offline.completeBackup(vmId, req));
      // A domain stopped under its backup keeps libvirt's record of the checkpoint backup-begin made, though the images
      // no longer hold its bitmap: a plain checkpoint-delete fails on it ("bitmap not found") and other tools refuse the
      // domain. Only the record can go; the bitmaps were settled in the images just now.
      if (!req.success && (await this.checkpointNames(vmId)).includes(mine)) await this.virsh(['checkpoint-delete', vmId, mine, '--metadata']);
      return rolledBack;
    }
    const names = await this.checkpointNames(vmId);
    const remove = req.success ? (names.includes(mine) ? names.filter((n) => n !== mine) : []) : names.filter((n) => n === mine);
    for (const name of remove) await this.deleteCheckpoint(vmId, name);
    return { vmId, success: req.success, removed: remove };
  }

  private async checkpointNames(vmId: string): Promise<string[]> {
    return (await this.virsh(['checkpoint-list', vmId, '--name'])).split('\n').map((l) => l.trim()).filter((n) => n.startsWith(this.prefix));
  }

  private async deleteCheckpoint(vmId: string, name: string): Promise<void> {
    await this.virsh(['checkpoint-delete', vmId, name]).catch(async (error: Error) => {
      this.log('warn', `checkpoint ${name} of ${vmId} could not be deleted (${error.message}); dropping its metadata`);
      await this.virsh(['checkpoint-delete', vmId, name, '--metadata']);
    });
  }

  /** The qemu-image driver, told about this shut-off domain's disks first. */
  private async offlineCall<T>(vmId: string, fn: () => Promise<T>): Promise<T> {
    const vm = await this.getVm(vmId);
    const entry: InventoryVm = { id: vm.id, name: vm.name, disks: vm.disks.map((d) => ({ id: d.id, path: d.path, format: d.format })) };
    this.offlineInventory.vms = [...this.offlineInventory.vms.filter((v) => v.id !== vmId), entry];
    return fn();
  }

  // --------------------------------------------------------------- snapshot

  async openSnapshot(vmId: string, options: OpenSnapshotOptions = {}): Promise<SourceSnapshot> {
    const pending = this.pending.get(vmId);
    if (!pending) {
      const snapshot: SourceSnapshot = await this.offlineCall(vmId, () => this.offline.openSnapshot(vmId, options));
      snapshot.consistency = { consistency: 'crash', consistencyReason: 'the domain was shut off: its disks were read as it left them', freezeMs: null };
      try {
        snapshot.configuration = await this.configuration(vmId);
      } catch (error) {
        await snapshot.close();
        throw error;
      }
      return snapshot;
    }
    this.pending.delete(vmId);
    if (this.snapshots.has(vmId)) throw new Error(`a backup of ${vmId} is already running`);
    const { info, running } = await this.domain(vmId);
    if (!running) throw new Error(`domain ${info.name} stopped running since the backup was prepared`);
    const vm = await this.getVm(vmId);
    const dir = join(this.opts.workDir, `${JOB_DIR}${randomUUID()}`);
    await mkdir(dir, { mode: 0o700 });
    try {
      if (info.qemuUser) {
        await chown(dir, info.qemuUser.uid, info.qemuUser.gid);
        await assertReachable(dirname(dir), info.qemuUser);
      }
      const socket = join(dir, 'nbd.sock');
      await writeFile(join(dir, 'backup.xml'), backupXml({ incremental: pending.mode === 'incremental' ? this.prefix + pending.sincePointId : null, socket, disks: vm.disks.map((d) => ({ target: d.id, scratch: join(dir, `${d.id}.scratch`) })) }));
      await writeFile(join(dir, 'checkpoint.xml'), checkpointXml(this.prefix + pending.newPointId, vm.disks.map((d) => d.id)));
      // Whose checkpoint this job makes: an agent killed before the job ends leaves it, and the next start deletes it.
      await writeFile(join(dir, JOB_CHECKPOINT), JSON.stringify({ vmId, checkpoint: this.prefix + pending.newPointId }));
      // Just before the instant the disks are read at: the definition the point is restored with. Read before
      // backup-begin rather than beside the job it starts: libvirtd 9.0 crashed here once (a general protection
      // fault in its qemu driver) during a backup whose definition was read right after backup-begin; the cause
      // is not known, and this keeps the read away from the job's setup.
      const configuration = await this.configuration(vmId);
      const { consistency, backupBeginMs } = await this.blockNodes.run(vmId, () => this.frozen(info, ['backup-begin', vmId, join(dir, 'backup.xml'), join(dir, 'checkpoint.xml')]));
      this.timings.set(vmId, { freezeMs: consistency.freezeMs, backupBeginMs });
      const disks: SnapshotDisk[] = vm.disks.map((d) => ({
        diskId: d.id,
        uri: `nbd+unix:///${d.id}?socket=${socket}`,
        socketPath: socket,
        exportName: d.id,
        format: d.format,
        virtualSize: d.virtualSize,
        ...(pending.mode === 'incremental' ? { bitmap: EXPORT_BITMAP(d.id), dirtyBitmapContext: `qemu:dirty-bitmap:${EXPORT_BITMAP(d.id)}` } : {}),
      }));
      // one running backup job of the domain, its NBD exports and scratch files: closing it ends the job
      const snapshot = new EndingSnapshot(randomUUID(), vmId, disks, consistency, () => this.endJob(vmId, dir), (s) => {
        if (this.snapshots.get(vmId) === s) this.snapshots.delete(vmId);
      });
      snapshot.configuration = configuration;
      this.snapshots.set(vmId, snapshot);
      return snapshot;
    } catch (error) {
      await this.endJob(vmId, dir);
      throw error;
    }
  }

  /**
   * The domain's persistent definition (a transient domain has only its live one), its UEFI variables file and
   * its TPM state, as they are now. Secrets libvirt keeps out of dumpxml (VNC passwords) stay out.
   */
  async configuration(vmId: string): Promise<VmConfiguration> {
    const domainXml = await this.virsh(['dumpxml', '--inactive', vmId]).catch(() => this.virsh(['dumpxml', vmId]));
    const uuid = parseDomainXml(domainXml).uuid;
    const nvramFile = nvramPath(domainXml);
    // A domain that never booted has no variables file yet: libvirt creates it from the template at the first start.
    const nvram = nvramFile ? await readFile(nvramFile).then((b) => b.toString('base64'), (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e))) : null;
    const tpm = hasEmulatedTpm(domainXml) ? await readTree(join(this.opts.swtpmDir ?? '/var/lib/libvirt/swtpm', uuid)) : null;
    return { schemaVersion: 1, kind: 'libvirt', domainXml, nvram, tpm, capturedAt: new Date().toISOString() };
  }

  /**
   * Freezes the guest's filesystems through its guest agent, runs `backup-begin`, thaws: on one line of one virsh
   * shell, so nothing of ours runs while the guest is frozen (docs/benchmarks.md, peer). virsh runs each command of
   * the line whatever the one before did, so the thaw always runs; a marker file names the frozen domain until it
   * is thawed, so an agent killed in between thaws it at its next start. A line that does not end in time (a guest
   * agent that never answers) is cut: the guest is thawed, and the job begun alone, crash-consistent, unless it
   * had begun.
   */
  private async frozen(info: DomainInfo, begin: string[]): Promise<{ consistency: Consistency; backupBeginMs: number }> {
    const started = performance.now();
    // a guest still being thawed after a failed thaw is thawed by this line now, not in the middle of it
    const mayBeFrozen = this.stillFrozen.has(info.uuid);
    await this.stopThawing(info.uuid);
    if (!info.guestAgentChannel) {
      await this.virsh(begin);
      return { consistency: { consistency: 'crash', consistencyReason: 'the domain has no guest agent channel (org.qemu.guest_agent.0)', freezeMs: null }, backupBeginMs: performance.now() - started };
    }
    const marker = join(this.opts.workDir, `${FREEZE_MARKER}${info.uuid}`);
    await writeFile(marker, `${new Date().toISOString()}\n`);
    const limit = (this.opts.freezeTimeoutMs ?? 10_000) + (this.opts.commandTimeoutMs ?? 60_000);
    let results: (Error | null)[];
    try {
      results = await this.shell.sequence([['domfsfreeze', info.uuid], begin, ['domfsthaw', info.uuid]], limit);
    } catch (error) {
      await this.thaw(info.uuid, true);
      await rm(marker, { force: true });
      if (await this.hasBackupJob(info.uuid)) throw error;
      await this.virsh(begin);
      return { consistency: { consistency: 'crash', consistencyReason: `freezing the guest did not end: ${(error as Error).message}`, freezeMs: null }, backupBeginMs: performance.now() - started };
    }
    const [freezeFailed, beginFailed, thawFailed] = results;
    // a thaw that failed after a freeze that held, or of a guest an earlier thaw had not reached, is tried again
    // (a guest left frozen is an outage)
    if (thawFailed && (!freezeFailed || mayBeFrozen)) await this.thaw(info.uuid, true);
    const elapsed = performance.now() - started;
    await rm(marker, { force: true });
    if (beginFailed) throw beginFailed;
    const consistency: Consistency = freezeFailed
      ? { consistency: 'crash', consistencyReason: `freezing the guest failed: ${freezeFailed.message}`, freezeMs: null }
      : { consistency: 'application', consistencyReason: null, freezeMs: Math.round(elapsed) };
    return { consistency, backupBeginMs: elapsed };
  }

  /** Thaw, retried: a guest left frozen is an outage. After a failed freeze it is tried once (a partial freeze is still a freeze). */
  private async thaw(vmId: string, wasFrozen: boolean): Promise<void> {
    const attempts = wasFrozen ? 5 : 1;
    for (let i = 1; i <= attempts; i++) {
      try {
        await this.virsh(['domfsthaw', vmId], 10_000);
        return;
      } catch (error) {
        if (!wasFrozen) return;
        this.log(i === attempts ? 'error' : 'warn', `thawing ${vmId} failed (attempt ${i} of ${attempts}): ${(error as Error).message}`);
        if (i < attempts) await new Promise((r) => setTimeout(r, 500));
      }
    }
    this.keepThawing(vmId);
    throw new Error(`the guest of ${vmId} could not be thawed: it may still be frozen (tried again every ${(this.opts.thawRetryMs ?? 10_000) / 1000} s until it thaws)`);
  }

  /** Ends the retries of a guest's thaw; a retry under way is waited for, so that no thaw of it runs after this. */
  private async stopThawing(vmId: string): Promise<void> {
    const loop = this.stillFrozen.get(vmId);
    if (!loop) return;
    this.stillFrozen.delete(vmId);
    clearTimeout(loop.timer);
    await loop.attempt;
  }

  /**
   * Goes on thawing a guest whose thaw kept failing (its guest agent hung, libvirtd restarting), for as long as the
   * agent runs: its freeze marker stays until the guest thaws or its domain stops running, so an agent that stops
   * meanwhile thaws it at its next start.
   */
  private keepThawing(vmId: string): void {
    if (this.stillFrozen.has(vmId)) return;
    const marker = join(this.opts.workDir, `${FREEZE_MARKER}${vmId}`);
    const every = this.opts.thawRetryMs ?? 10_000;
    // each loop is its own: one ended (stopThawing, closeAll) or replaced meanwhile does nothing after its await
    const loop: ThawLoop = { timer: setTimeout(() => void run(), every), attempt: Promise.resolve() };
    const current = () => this.stillFrozen.get(vmId) === loop;
    const attempt = async (): Promise<void> => {
      const thawed = await this.virsh(['domfsthaw', vmId], 10_000).then(
        () => true,
        async (error: Error) => {
          const state = await this.virsh(['domstate', vmId]).then(
            (text) => text.trim(),
            (e: Error) => (/domain not found|failed to get domain/i.test(e.message) ? 'gone' : 'unknown'),
          );
          if (state === 'running' || state === 'paused' || state === 'unknown') {
            this.log('error', `the guest of ${vmId} is still not thawed: ${error.message}`);
            return false;
          }
          return true;
        },
      );
      if (!current()) return;
      if (!thawed) {
        loop.timer = setTimeout(() => void run(), every);
        return;
      }
      this.stillFrozen.delete(vmId);
      await rm(marker, { force: true });
      this.log('warn', `the guest of ${vmId} is thawed, after its thaw had failed`);
    };
    const run = () => {
      loop.attempt = attempt().catch((error: Error) => this.log('error', `thawing ${vmId} again failed: ${error.message}`));
      return loop.attempt;
    };
    this.stillFrozen.set(vmId, loop);
  }

  /**
   * Ends the domain's backup job (a domain that stopped has none) and removes the job's directory with its
   * scratch files. While libvirtd is away (restarted, crashed) qemu keeps the job and its export: this waits
   * for libvirtd to answer again, up to libvirtWaitMs, rather than take its silence for "no job". If it never
   * answers, the job is tried again in the background every endRetryMs for as long as this agent runs (a backup
   * job left open holds the domain's scratch files and refuses the next backup), and at the next agent start after.
   */
  private async endJob(vmId: string, dir: string): Promise<void> {
    const deadline = Date.now() + (this.opts.libvirtWaitMs ?? 120_000);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.abortJob(vmId, dir, false);
        break;
      } catch (error) {
        if (Date.now() >= deadline) {
          this.log('error', `the backup job of ${vmId} could not be ended: libvirt did not answer (${(error as Error).message}); trying again every ${this.endRetryMs / 1000} s, and at the next agent start`);
          this.endLater(vmId, dir);
          return;
        }
        if (attempt === 1) this.log('warn', `libvirt does not answer (${(error as Error).message}); waiting for it to end the backup job of ${vmId}`);
        await sleep(1000);
      }
    }
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * Aborts the domain's backup job and waits until it is gone; throws while libvirt does not answer. `ownOnly`: only
   * a job whose NBD socket lies in `dir` (tried again later, a new backup of the domain may have begun meanwhile).
   */
  private abortJob(vmId: string, dir: string, ownOnly: boolean): Promise<void> {
    return this.blockNodes.run(vmId, async () => {
      if (!(await this.hasBackupJob(vmId))) return;
      if (ownOnly && !backupSocket(await this.virsh(['backup-dumpxml', vmId]))?.startsWith(`${dir}/`)) return;
      await this.virsh(['domjobabort', vmId]).catch((e: Error) => this.log('warn', `domjobabort ${vmId}: ${e.message}`));
      for (let i = 0; i < 100 && (await this.hasBackupJob(vmId)); i++) await sleep(100);
    });
  }

  private endLater(vmId: string, dir: string): void {
    const again = () => {
      const timer = setTimeout(() => {
        void this.abortJob(vmId, dir, true).then(
          async () => {
            if (this.endingLater.get(dir) !== timer) return;
            this.endingLater.delete(dir);
            await rm(dir, { recursive: true, force: true });
            this.log('warn', `the backup job of ${vmId} left open while libvirt did not answer is ended`);
          },
          () => this.endingLater.get(dir) === timer && again(),
        );
      }, this.endRetryMs);
      timer.unref();
      this.endingLater.set(dir, timer);
    };
    again();
  }

  /** Throws when libvirt does not answer: not knowing is not "no job". A domain that is not running has none. */
  async hasBackupJob(vmId: string): Promise<boolean> {
    const out = await this.virsh(['domjobinfo', vmId]).catch(async (error: Error) => {
      const state = await this.virsh(['domstate', vmId]).then(
        (text) => text.trim(),
        (e: Error) => {
          if (/domain not found|failed to get domain/i.test(e.message)) return 'gone';
          throw e;
        },
      );
      if (state === 'running' || state === 'paused') throw error;
      return '';
    });
    return /Operation:\s+Backup/.test(out);
  }

  async closeAll(): Promise<void> {
    // a job still open stays so: the next start ends it (its directory says whose it is)
    for (const timer of this.endingLater.values()) clearTimeout(timer);
    this.endingLater.clear();
    // a guest still frozen keeps its marker: the next start thaws it
    await Promise.all([...this.stillFrozen.keys()].map((vmId) => this.stopThawing(vmId)));
    await Promise.allSettled([...this.snapshots.values()].map((s) => s.close()));
    await this.offline.closeAll();
    this.shell.close();
  }

  /**
   * At agent start: what an agent killed mid-backup left. Backup jobs whose socket lies in our work dir are
   * aborted, guests it left frozen are thawed, the checkpoint each unfinished job created is deleted, job
   * directories (scratch files) removed, and the qemu-image driver's own leftovers cleaned. Checkpoints of
   * finished backups stay: the next successful backup keeps only its own.
   */
  async cleanupLeftovers(): Promise<{ abortedJobs: string[]; thawed: string[]; removedDirs: string[]; removedCheckpoints: string[] }> {
    await mkdir(this.opts.workDir, { recursive: true, mode: 0o711 });
    const abortedJobs: string[] = [];
    const thawed: string[] = [];
    const removedDirs: string[] = [];
    const removedCheckpoints: string[] = [];
    const entries = await readdir(this.opts.workDir);
    // Read before the jobs are ended: ending a job removes its directory.
    const unfinished = await Promise.all(
      entries.filter((e) => e.startsWith(JOB_DIR)).map((e) =>
        readFile(join(this.opts.workDir, e, JOB_CHECKPOINT), 'utf8').then(
          (text) => JSON.parse(text) as { vmId: string; checkpoint: string },
          () => null,
        ),
      ),
    );
    for (const entry of entries.filter((e) => e.startsWith(FREEZE_MARKER))) {
      const vmId = entry.slice(FREEZE_MARKER.length);
      await this.thaw(vmId, true).then(
        async () => {
          thawed.push(vmId);
          await rm(join(this.opts.workDir, entry), { force: true });
        },
        // the marker stays: the thaw goes on in the background, and at the next start if need be
        (e: Error) => this.log('error', e.message),
      );
    }
    const running = (await this.virsh(['list', '--uuid']).catch(() => '')).split('\n').map((l) => l.trim()).filter(Boolean);
    for (const vmId of running) {
      if (!(await this.hasBackupJob(vmId).catch(() => false))) continue;
      const socket = backupSocket(await this.virsh(['backup-dumpxml', vmId]).catch(() => ''));
      if (!socket || !socket.startsWith(join(this.opts.workDir, JOB_DIR))) continue;
      await this.endJob(vmId, dirname(socket));
      abortedJobs.push(vmId);
    }
    for (const entry of await readdir(this.opts.workDir)) {
      if (!entry.startsWith(JOB_DIR)) continue;
      await rm(join(this.opts.workDir, entry), { recursive: true, force: true });
      removedDirs.push(entry);
    }
    // A backup the agent never finished made a checkpoint no restore point refers to. Deleting it merges its
    // bitmap into its parent's, so the last recorded point's checkpoint still covers every change since then.
    for (const job of unfinished) {
      if (!job) continue;
      const names = (await this.virsh(['checkpoint-list', job.vmId, '--name']).catch(() => '')).split('\n').map((l) => l.trim());
      if (!names.includes(job.checkpoint)) continue;
      await this.deleteCheckpoint(job.vmId, job.checkpoint).then(
        () => removedCheckpoints.push(`${job.vmId}/${job.checkpoint}`),
        (e: Error) => this.log('error', `checkpoint ${job.checkpoint} of ${job.vmId}, left by an unfinished backup, could not be deleted: ${e.message}`),
      );
    }
    await this.offline.cleanupLeftovers();
    if (abortedJobs.length || thawed.length || removedDirs.length || removedCheckpoints.length) {
      this.log('warn', `cleaned up after a previous agent: aborted backup jobs of ${abortedJobs.join(', ') || 'none'}; thawed ${thawed.join(', ') || 'none'}; removed ${removedDirs.length} job directories; deleted checkpoints of unfinished backups: ${removedCheckpoints.join(', ') || 'none'}`);
    }
    return { abortedJobs, thawed, removedDirs, removedCheckpoints };
  }
}

/** qemu (the domain's DAC user) creates the NBD socket in the job directory: every directory above it must let that user through. */
async function assertReachable(dir: string, user: { uid: number; gid: number }): Promise<void> {
  for (let d = dir; ; d = dirname(d)) {
    const s = await stat(d);
    const ok = s.uid === user.uid ? s.mode & 0o100 : s.gid === user.gid ? s.mode & 0o010 : s.mode & 0o001;
    if (!ok) {
      if (d === dir) await chmod(d, (s.mode & 0o777) | 0o011);
      else throw new Error(`qemu (uid ${user.uid}) cannot reach ${dir}: ${d} is not searchable for it (chmod o+x ${d}, or run the agent with another SENDENSE_AGENT_DIR)`);
    }
    if (d === dirname(d)) return;
  }
}

/** The files under a TPM state directory (a few levels deep), base64; [] when swtpm has not written it yet. */
async function readTree(dir: string, prefix = ''): Promise<{ name: string; data: string }[]> {
  const entries = await readdir(join(dir, prefix), { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)));
  const files: { name: string; data: string }[] = [];
  for (const entry of entries) {
    const name = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory() && name.split('/').length < 4) files.push(...(await readTree(dir, name)));
    else if (entry.isFile()) files.push({ name, data: (await readFile(join(dir, name))).toString('base64') });
  }
  return files;
}
