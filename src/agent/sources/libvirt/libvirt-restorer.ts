import { randomUUID } from 'node:crypto';
import { chmod, chown, mkdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { imageSummary, runQemuImg } from '../../../qemu/qemu-img';
import type { DrillScreenshot, RestoreCheckRequest, RestoreStartRequest } from '../../../wire/restore-protocol';
import type { RestoreJournal, RestoreJournalState } from '../../restore-journal';
import { parseDomainXml, readsFromNetwork } from './domain-xml';
import type { LibvirtSource } from './libvirt-source';
import { startInstantDisks, stopInstantDisks } from './instant-disks';
import { checkWritableDir, replacedDiskFile, replacedDomain } from './target-checks';
import { minimalDomainXml, restoredDomainXml, RestoredDomainSpec, withoutBackingStores } from './restored-domain';

/** One disk a restore writes: into `write`, which is `final` for a new domain, or a file beside the replaced one. */
export interface RestoreDiskPlan {
  diskId: string;
  virtualSize: number;
  format: 'qcow2' | 'raw';
  write: string;
  final: string;
  /** The replaced file's owner and mode, given to the new file before it takes the old one's name. */
  owner: { uid: number; gid: number; mode: number } | null;
}

export interface DrillOutcome {
  passed: boolean;
  bootMs: number | null;
  reason: string | null;
  screenshot: DrillScreenshot | null;
}

export interface RestoredDomainInfo {
  name: string;
  uuid: string;
  started: boolean;
  notes: string[];
}

/** Raised for a target that cannot take the restore (name taken, domain running): the hub answers 409. */
export class RestoreConflict extends Error {}

/**
 * The libvirt side of a restore: where the disks go, and what becomes of them once written and checked — a new
 * domain defined from the point's recorded XML (or a minimal one), or the disks of an existing shut-off domain
 * replaced. Data moving and checking is the runner's; this never touches a byte of a disk.
 */
export class LibvirtRestorer {
  constructor(
    private readonly source: LibvirtSource,
    private readonly opts: { workDir: string; swtpmDir?: string; settleMs?: number; log: (level: 'info' | 'warn' | 'error', message: string) => void },
  ) {}

  /** Checks the target and says where each disk is written (a drill writes none). Nothing is created yet. */
  async plan(req: RestoreCheckRequest): Promise<RestoreDiskPlan[]> {
    if (req.target.kind === 'replace') return this.planReplace(req, req.target.vmId);
    if (req.target.kind === 'drill') {
      if (!req.configuration && !req.definition) throw new RestoreConflict(`restore point ${req.restorePointId} holds no configuration: name memoryMiB and vcpus for the drill's domain`);
      return [];
    }
    const { name } = req.target;
    if (await this.source.virsh(['domuuid', name]).then(() => true, () => false)) throw new RestoreConflict(`a domain named ${name} already exists`);
    if (!req.configuration && !req.definition) throw new RestoreConflict(`restore point ${req.restorePointId} holds no configuration: name memoryMiB and vcpus for the new domain`);
    if (req.configuration) {
      const targets = new Set(parseDomainXml(req.configuration.domainXml).disks.map((d) => d.target));
      const unknown = req.disks.filter((d) => !targets.has(d.diskId));
      if (unknown.length) throw new Error(`the recorded domain has no disk ${unknown.map((d) => d.diskId).join(', ')}`);
    }
    const dir = req.target.storageDir ?? (await this.defaultStorageDir());
    await checkWritableDir(dir, req.target.storageDir ? `storageDir ${dir}` : `libvirt's default pool ${dir} (no storageDir given)`, { systemTrees: true });
    const plans: RestoreDiskPlan[] = [];
    for (const d of req.disks) {
      const file = join(dir, `${name}-${d.diskId}.qcow2`);
      if (await exists(file)) throw new RestoreConflict(`${file} already exists`);
      plans.push({ diskId: d.diskId, virtualSize: d.virtualSize, format: 'qcow2', write: file, final: file, owner: null });
    }
    // the new domain's other files (domainXml): refused now rather than after every disk was written
    for (const file of [join(dir, `${name}.console.log`), join(dir, `${name}_VARS.fd`)]) if (await exists(file)) throw new RestoreConflict(`${file} already exists`);
    return plans;
  }

  private async planReplace(req: RestoreCheckRequest, vmId: string): Promise<RestoreDiskPlan[]> {
    const { info, running } = await replacedDomain(this.source, vmId);
    const state = (await this.source.virsh(['domstate', vmId])).trim();
    if (running || state !== 'shut off') throw new RestoreConflict(`domain ${info.name} is ${state}: shut it off before its disks are replaced`);
    const plans: RestoreDiskPlan[] = [];
    for (const d of req.disks) {
      const disk = info.disks.find((x) => x.target === d.diskId);
      if (!disk || disk.type !== 'file' || !disk.file) throw new RestoreConflict(`domain ${info.name} has no file-backed disk ${d.diskId} to replace`);
      const s = await replacedDiskFile(info.name, d.diskId, disk.file, dirname(disk.file));
      const format = disk.format === 'raw' ? 'raw' : 'qcow2';
      plans.push({ diskId: d.diskId, virtualSize: d.virtualSize, format, write: `${disk.file}.sendense-restore-${req.restoreId.slice(0, 8)}`, final: disk.file, owner: { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 } });
    }
    return plans;
  }

  /** libvirt's `default` pool, where virt-manager and virt-install put disks; /var/lib/libvirt/images without one. */
  private async defaultStorageDir(): Promise<string> {
    const xml = await this.source.virsh(['pool-dumpxml', 'default']).catch(() => '');
    return /<target>[\s\S]*?<path>([^<]+)<\/path>/.exec(xml)?.[1]?.trim() ?? '/var/lib/libvirt/images';
  }

  /** Every disk is written and checked: the domain is defined (and started), or the replaced disks take their place. */
  async commit(req: RestoreStartRequest, disks: RestoreDiskPlan[], journal: RestoreJournal): Promise<RestoredDomainInfo> {
    if (req.target.kind === 'replace') {
      // the copy may have taken hours: a domain started meanwhile writes to the disks the renames would put away
      const { info, running } = await replacedDomain(this.source, req.target.vmId);
      const state = (await this.source.virsh(['domstate', info.uuid])).trim();
      if (running || state !== 'shut off') throw new RestoreConflict(`domain ${info.name} is ${state}: it was started while its disks were restored; its own disks are left as they are (shut it off and restore again)`);
      // before the commit is journaled: a file this cannot take leaves the domain's own disks in place
      for (const d of disks) {
        await chown(d.write, d.owner!.uid, d.owner!.gid);
        await chmod(d.write, d.owner!.mode);
      }
      await journal.record({ phase: 'committing', renames: disks.map((d) => ({ from: d.write, to: d.final })) });
      await finishRenames(journal.state);
      // The checkpoints describe the replaced images' bitmaps, which went with them: the next backup is a full.
      const checkpoints = (await this.source.virsh(['checkpoint-list', info.uuid, '--name'])).split('\n').map((l) => l.trim()).filter(Boolean);
      for (const name of checkpoints) await this.source.virsh(['checkpoint-delete', info.uuid, name, '--metadata']);
      return { name: info.name, uuid: info.uuid, started: false, notes: checkpoints.length ? [`checkpoints removed: ${checkpoints.join(', ')}`] : [] };
    }
    if (req.target.kind !== 'new-domain') throw new Error(`a ${req.target.kind} is not committed`);
    const { name, start } = req.target;
    const uuid = randomUUID();
    const { xml, notes } = await this.domainXml(req, journal, { name, uuid, dir: dirname(disks[0].final), disks: disks.map((d) => ({ target: d.diskId, file: d.final, format: d.format })) });
    await this.withXmlFile(req.restoreId, xml, async (file) => {
      await journal.record({ domainUuid: uuid });
      await this.source.virsh(['define', file]);
    });
    if (start) await this.source.virsh(['start', uuid]);
    return { name, uuid, started: start, notes };
  }

  /**
   * A recovery drill: the point booted from the hub's export (overlays on this host, nothing copied) as a
   * transient domain without network; it passes once its guest agent answers, or, without one, once it has
   * run `settleMs` with its disks readable (qemu stops a guest whose disk reads fail). Everything it made is
   * gone when this returns.
   */
  async drill(req: RestoreStartRequest, journal: RestoreJournal, hubHost: string, signal: AbortSignal): Promise<DrillOutcome> {
    if (req.target.kind !== 'drill') throw new Error('not a drill');
    const deadline = Date.now() + req.target.timeoutSeconds * 1000;
    const dir = join(this.opts.workDir, `drill-${req.restoreId}`);
    await journal.record({ dirs: [...journal.state.dirs, dir] });
    const name = `sendense-drill-${req.restoreId.slice(0, 8)}`;
    const uuid = randomUUID();
    try {
      const disks = await startInstantDisks(dir, req.disks, hubHost, this.opts.log);
      await journal.record({ proxyPids: disks.map((d) => d.proxyPid) });
      const { xml } = await this.domainXml(req, journal, { name, uuid, dir, withoutNetwork: true, disks: disks.map((d) => ({ target: d.diskId, file: d.overlay, format: 'qcow2', backing: { socket: d.socket, exportName: d.exportName } })) });
      const consoleLog = join(dir, `${name}.console.log`);
      const agent = parseDomainXml(xml).guestAgentChannel;
      const started = performance.now();
      await this.withXmlFile(req.restoreId, xml, async (file) => {
        await journal.record({ domainUuid: uuid });
        await this.source.virsh(['create', file]);
      });
      let verdict: { passed: boolean; reason: string | null } | null = null;
      let runningSince: number | null = null;
      while (!verdict) {
        signal.throwIfAborted();
        const state = (await this.source.virsh(['domstate', uuid, '--reason']).catch(() => 'gone')).trim();
        if (!state.startsWith('running')) verdict = { passed: false, reason: `the domain is ${state}${state.startsWith('paused') ? ' (its disks could not be read)' : ''}` };
        else if (agent && (await this.source.virsh(['qemu-agent-command', uuid, '{"execute":"guest-ping"}'], 10_000).then(() => true, () => false))) verdict = { passed: true, reason: null };
        else if (!agent && (runningSince ??= performance.now()) && performance.now() - runningSince >= (this.opts.settleMs ?? 10_000)) verdict = { passed: true, reason: null };
        else if (Date.now() > deadline) verdict = { passed: false, reason: agent ? `its guest agent did not answer within ${req.target.timeoutSeconds} s` : `it did not keep running for ${(this.opts.settleMs ?? 10_000) / 1000} s within ${req.target.timeoutSeconds} s` };
        else await new Promise((r) => setTimeout(r, 500));
      }
      const bootMs = verdict.passed ? Math.round(performance.now() - started) : null;
      const screenshot = await this.screenshot(uuid, dir, consoleLog);
      return { ...verdict, bootMs, screenshot };
    } finally {
      await this.source.virsh(['destroy', uuid]).catch(() => undefined);
      // the overlays stay while a qemu may still use them (the restore's undo tries again)
      if (await this.domainExists(uuid)) throw new Error(`the drill's domain ${uuid} could not be destroyed`);
      await stopInstantDisks(dir, journal.state.proxyPids);
    }
  }

  /**
   * Instant recovery: the new domain defined on overlays (its final disk files) backed by the hub's export
   * through local proxies, and started. The copy that makes it local is `pull`'s.
   */
  async startInstant(req: RestoreStartRequest, plans: RestoreDiskPlan[], journal: RestoreJournal, hubHost: string): Promise<{ name: string; uuid: string; proxyDir: string }> {
    if (req.target.kind !== 'new-domain') throw new Error('instant recovery makes a new domain');
    const { name } = req.target;
    const proxyDir = join(this.opts.workDir, `instant-${req.restoreId}`);
    await journal.record({ dirs: [...journal.state.dirs, proxyDir] });
    const disks = await startInstantDisks(proxyDir, req.disks, hubHost, this.opts.log, (id) => plans.find((p) => p.diskId === id)!.final);
    await journal.record({ proxyPids: disks.map((d) => d.proxyPid) });
    const uuid = randomUUID();
    const { xml } = await this.domainXml(req, journal, { name, uuid, dir: dirname(plans[0].final), disks: disks.map((d) => ({ target: d.diskId, file: d.overlay, format: 'qcow2', backing: { socket: d.socket, exportName: d.exportName } })) });
    await this.withXmlFile(req.restoreId, xml, async (file) => {
      await journal.record({ domainUuid: uuid });
      await this.source.virsh(['define', file]);
    });
    await this.source.virsh(['start', uuid]);
    return { name, uuid, proxyDir };
  }

  /**
   * The background copy: a `blockpull` per disk streams the backing (the hub's export) into the overlay, qemu
   * reading through on demand meanwhile, and drops the backing when done. One disk at a time: Debian's qemu 7.2
   * segfaults (in bdrv_refresh_filename) when asked to describe a domain's block nodes while a pull's end changes
   * them, and libvirt asks as it handles each pull's end (query-named-block-nodes): two pulls ending together
   * crashed 5 of 29 runs of the console's restore test. The agent's own questions wait for the copy to end
   * (libvirt-source.ts, `copying`). A pull that stopped (never started by a killed agent, the hub away too long) is started again and
   * skips what it copied. A domain shut off has its copy finished offline (finishOffline). One that stopped because
   * the overlay cannot take the data (its filesystem full, the guest paused on an I/O error), or that keeps stopping,
   * stalls: `onStall` is given the reason at every check (each STALL_CHECK_MS), and the copy waits with the domain as
   * it is, since its overlays hold what its guest wrote since it booted and only the operator may give that up (by
   * cancelling the restore). Once the space is there, a guest qemu paused on the I/O error runs again and the copy
   * starts again; `onStall(null)` once a pull is seen running or the copy is done. Ends when no disk has a network
   * backing left, or throws when aborted.
   */
  async pull(uuid: string, diskIds: string[], onProgress: (diskId: string, done: number, total: number) => void, signal: AbortSignal, onStall: (reason: string | null) => void = () => undefined): Promise<void> {
    // a copy resumed after the agent's restart may find a disk's pull still running: that disk goes first
    let running: string | undefined;
    for (const diskId of diskIds) if (!running && blockJobBytes(await this.source.virsh(['blockjob', uuid, diskId, '--info', '--raw']).catch(() => ''))) running = diskId;
    const pending = new Set(running ? [running, ...diskIds] : diskIds);
    const issued = new Set<string>();
    /** Per disk, the jobs this pull started that ended with the disk still reading from the hub, since one was last seen running. */
    const stopped = new Map<string, number>();
    let stalled: string | null = null;
    let seenRunning = false;
    const stall = (reason: string | null) => {
      stalled = reason;
      onStall(reason);
    };
    while (pending.size) {
      signal.throwIfAborted();
      let waitMs = 1000;
      const xml = await this.source.virsh(['dumpxml', uuid]).catch(() => null);
      for (const diskId of [...pending]) {
        if (xml !== null && !diskBackedByNetwork(xml, diskId)) {
          pending.delete(diskId);
          continue;
        }
        // --raw: the job's own cur/end in bytes (--bytes is for --bandwidth, and without --raw virsh prints a percentage)
        const job = blockJobBytes(await this.source.virsh(['blockjob', uuid, diskId, '--info', '--raw']).catch(() => ''));
        if (job) {
          stopped.set(diskId, 0);
          // said at the first sight too: a copy resumed by a new agent may follow a stall the hub still shows
          if (stalled !== null || !seenRunning) stall(null);
          seenRunning = true;
          onProgress(diskId, job.cur, job.end);
          break;
        }
        // libvirtd away: nothing to conclude from the missing job until it answers again
        if (xml === null) break;
        // a job that just finished leaves libvirt's XML a moment after it leaves the job list
        const now = await this.source.virsh(['dumpxml', uuid]).catch(() => null);
        if (now === null) break;
        if (!diskBackedByNetwork(now, diskId)) {
          pending.delete(diskId);
          continue;
        }
        const power = (await this.source.virsh(['domstate', uuid, '--reason']).catch(() => '')).trim();
        if (/^shut off/i.test(power)) {
          // no qemu to pull with: the disks are made local offline, every one at once (the domain is not started for it)
          stall(`the domain is ${power}: its copy is being finished offline`);
          await this.finishOffline(uuid, now, [...pending], signal, onProgress).catch((e: Error) => {
            if (signal.aborted) return;
            stall(`the copy of ${diskId} stopped: the domain is ${power}, and finishing its copy offline failed: ${e.message}`);
            waitMs = STALL_CHECK_MS;
          });
          break;
        }
        if (stalled !== null) {
          // waiting: only what an operator changes holds it (space); a pause on the I/O error is its consequence
          const cause = await this.pullFault(uuid, now, diskId, PULL_LOW_FREE, power, { causesOnly: true });
          if (cause) {
            stall(`the copy of ${diskId} stopped: ${cause}`);
            waitMs = STALL_CHECK_MS;
            break;
          }
          await this.resumeAfterIoError(uuid);
        } else if (issued.has(diskId)) {
          // stopped again without being seen running: the filesystem need not be quite full to be the reason
          const count = (stopped.get(diskId) ?? 0) + 1;
          const fault = await this.pullFault(uuid, now, diskId, count >= 2 ? PULL_LOW_FREE : PULL_MIN_FREE, power);
          stopped.set(diskId, count);
          if (fault) {
            stall(`the copy of ${diskId} stopped: ${fault}`);
            waitMs = STALL_CHECK_MS;
            break;
          }
          if (count >= PULL_STOPS) {
            // started again all the same, at the slower pace, until it is seen running
            stall(`the copy of ${diskId} stopped ${count} times in a row without finishing`);
            waitMs = STALL_CHECK_MS;
          } else this.opts.log('warn', `the copy of ${diskId} of domain ${uuid} stopped before it finished; started again`);
        }
        await this.source.virsh(['blockpull', uuid, diskId]).catch((e: Error) => this.opts.log('warn', `blockpull of ${diskId}: ${e.message}`));
        issued.add(diskId);
        break;
      }
      if (pending.size) await sleep(waitMs, undefined, { signal }).catch(() => undefined);
    }
    if (stalled !== null) stall(null);
  }

  /**
   * The copy of a shut-off domain (its guest powered itself off, an operator pulled the plug): each overlay takes in
   * what it still reads from the hub (`qemu-img rebase` onto no backing, through the proxy), then the domain is
   * defined again without its network backings, so that it starts on its own disks.
   */
  private async finishOffline(uuid: string, xml: string, diskIds: string[], signal: AbortSignal, onProgress: (diskId: string, done: number, total: number) => void): Promise<void> {
    for (const diskId of diskIds) {
      const overlay = diskSourceFile(xml, diskId);
      if (!overlay) throw new Error(`disk ${diskId} of domain ${uuid} has no file`);
      if (!diskBackedByNetwork(xml, diskId)) continue;
      // its progress as the pull's was: bytes of the disk, here the share qemu-img prints of its virtual size
      const { virtualSize } = await imageSummary(overlay, { format: 'qcow2' });
      await runQemuImg(['rebase', '-p', '-f', 'qcow2', '-b', '', overlay], { signal, onProgress: (share) => onProgress(diskId, Math.round(share * virtualSize), virtualSize) });
    }
    const inactive = await this.source.virsh(['dumpxml', '--inactive', uuid]);
    await this.withXmlFile(`offline-${uuid}`, withoutNetworkBackings(inactive), async (file) => void (await this.source.virsh(['define', file])));
  }

  /** A domain qemu paused on an I/O error (its overlay full for a while) runs again; an operator's pause stays. */
  private async resumeAfterIoError(uuid: string): Promise<void> {
    const state = (await this.source.virsh(['domstate', uuid, '--reason'])).trim();
    if (/^paused \((I\/O error|ioerror)/i.test(state)) await this.source.virsh(['resume', uuid]);
  }

  /**
   * Why a disk's copy cannot go on, or null when nothing says so: the overlay's filesystem full, a disk error the
   * domain reports, the domain paused by one (`state`: `virsh domstate --reason`, read by the caller; a shut-off
   * domain is finished offline instead). `causesOnly`: what an operator changes (space), not the errors and the
   * pause that follow from it.
   */
  private async pullFault(uuid: string, xml: string, diskId: string, minFree: number, state: string, { causesOnly = false } = {}): Promise<string | null> {
    const faults: string[] = [];
    const overlay = diskSourceFile(xml, diskId);
    if (overlay) {
      const fs = await statfs(dirname(overlay)).catch(() => null);
      if (fs && fs.bavail * fs.bsize < minFree) faults.push(`no space left on the filesystem of ${overlay} (${fs.bavail * fs.bsize} bytes free)`);
    }
    const errors = causesOnly ? '' : (await this.source.virsh(['domblkerror', uuid]).catch(() => '')).trim();
    if (errors && !/no errors found/i.test(errors)) faults.push(`disk errors: ${errors.split('\n').map((l) => l.trim()).join(', ')}`);
    if (!causesOnly && /^paused \((I\/O error|ioerror)/i.test(state)) faults.push(`the domain is ${state}`);
    return faults.length ? faults.join('; ') : null;
  }

  /**
   * The copy done: a domain qemu paused on an I/O error while it ran (its overlay full for a while) runs again.
   * Whether it runs is then read from libvirt, not assumed: an operator's pause stays.
   */
  async settleInstant(uuid: string): Promise<boolean> {
    await this.resumeAfterIoError(uuid);
    return (await this.source.virsh(['domstate', uuid])).trim() === 'running';
  }

  /** The domain no longer reads from the hub: its proxies and their sockets go. */
  async releaseInstant(state: RestoreJournalState): Promise<void> {
    if (state.instant) await stopInstantDisks(state.instant.proxyDir, state.proxyPids);
  }

  /** The console at the verdict: an image when the domain has a display, else the last lines its serial console wrote. */
  private async screenshot(uuid: string, dir: string, consoleLog: string): Promise<DrillScreenshot | null> {
    const file = join(dir, 'screen.ppm');
    const image = await this.source.virsh(['screenshot', uuid, file], 30_000).then(() => readFile(file), () => null);
    if (image) return { contentType: 'image/x-portable-pixmap', data: image.toString('base64') };
    const text = await readFile(consoleLog, 'utf8').catch(() => null);
    return text === null ? null : { contentType: 'text/plain', data: Buffer.from(text.split('\n').slice(-60).join('\n')).toString('base64') };
  }

  /** The recorded domain as a new one, or a minimal one; its console log made as the restore's. */
  private async domainXml(req: RestoreStartRequest, journal: RestoreJournal, spec: { name: string; uuid: string; dir: string; disks: RestoredDomainSpec['disks']; withoutNetwork?: boolean }): Promise<{ xml: string; notes: string[] }> {
    const { name, dir } = spec;
    const base = { ...spec, consoleLog: join(dir, `${name}.console.log`) };
    const made = !req.configuration ? { xml: minimalDomainXml({ ...req.definition!, virtType: await this.virtType() }, base), notes: [] } : await this.recordedDomainXml(req.configuration, journal, base);
    // libvirt writes the console log from the first start on: made here, as the restore's, so its undo removes it
    if (made.xml.includes(base.consoleLog)) await createOwnFile(base.consoleLog, journal);
    return made;
  }

  /** The recorded domain as a new one, its UEFI variables and TPM state restored beside it. */
  private async recordedDomainXml(configuration: NonNullable<RestoreStartRequest['configuration']>, journal: RestoreJournal, base: Omit<RestoredDomainSpec, 'nvramFile'> & { dir: string }): Promise<{ xml: string; notes: string[] }> {
    const { name, uuid, dir } = base;
    let nvramFile: string | null = null;
    if (configuration.nvram) {
      nvramFile = join(dir, `${name}_VARS.fd`);
      // created before it is journaled: a file of that name already there is not ours to remove
      await writeFile(nvramFile, Buffer.from(configuration.nvram, 'base64'), { flag: 'wx', mode: 0o600 });
      await journal.addFile(nvramFile);
    }
    if (configuration.tpm?.length) {
      const tpmDir = join(this.opts.swtpmDir ?? '/var/lib/libvirt/swtpm', uuid);
      await journal.record({ dirs: [...journal.state.dirs, tpmDir] });
      for (const f of configuration.tpm) {
        await mkdir(dirname(join(tpmDir, f.name)), { recursive: true, mode: 0o711 });
        await writeFile(join(tpmDir, f.name), Buffer.from(f.data, 'base64'), { mode: 0o600 });
      }
    }
    return restoredDomainXml(configuration.domainXml, { ...base, nvramFile });
  }

  private async withXmlFile(restoreId: string, xml: string, use: (file: string) => Promise<void>): Promise<void> {
    const file = join(this.opts.workDir, `restore-${restoreId}.xml`);
    await writeFile(file, xml);
    try {
      await use(file);
    } finally {
      await rm(file, { force: true });
    }
  }

  /**
   * Whether libvirt has the domain of this uuid. `domname` looks up by id or uuid (`domuuid` by id or name would
   * never find it); an answer other than "no such domain" (libvirtd away) is not a no.
   */
  private async domainExists(uuid: string): Promise<boolean> {
    return this.source.virsh(['domname', uuid]).then(
      () => true,
      (e: Error) => {
        if (/failed to get domain|domain not found|no domain with matching/i.test(e.message)) return false;
        throw e;
      },
    );
  }

  /** kvm where this host has it, else TCG: a minimal domain must start here. */
  private async virtType(): Promise<'kvm' | 'qemu'> {
    return this.source.virsh(['domcapabilities', '--virttype', 'kvm']).then(() => 'kvm' as const, () => 'qemu' as const);
  }

  /** A restore that did not finish: what it made goes (its domain destroyed and undefined, its files removed); a replace that was committing is finished. */
  async undo(state: RestoreJournalState): Promise<string[]> {
    if (state.phase === 'committing') {
      await finishRenames(state);
      return state.renames.map((r) => `renamed ${r.from} to ${r.to}`);
    }
    const done: string[] = [];
    // the domain first: its qemu is the proxies' client
    const uuid = state.domainUuid;
    if (uuid && (await this.domainExists(uuid))) {
      await this.source.virsh(['destroy', uuid]).catch(() => undefined);
      await this.source.virsh(['undefine', uuid, '--checkpoints-metadata', '--nvram']).catch(() => this.source.virsh(['undefine', uuid, '--checkpoints-metadata']).catch(() => undefined));
      // its qemu may still read and write the overlays and disks: they stay, and so does the journal, for the next try
      if (await this.domainExists(uuid)) throw new Error(`domain ${uuid} could not be destroyed and undefined; its files are kept`);
      done.push(`undefined domain ${uuid}`);
    }
    if (state.proxyPids.length) done.push(`stopped NBD proxies ${state.proxyPids.join(', ')}`);
    for (const dir of state.dirs) await stopInstantDisks(dir, state.proxyPids);
    for (const file of [...state.files, ...state.renames.map((r) => r.from)]) if (await rm(file).then(() => true, () => false)) done.push(`removed ${file}`);
    for (const dir of state.dirs) if (await exists(dir)) await rm(dir, { recursive: true, force: true }).then(() => done.push(`removed ${dir}`));
    return done;
  }
}

/** Whether the domain's disk `target` still reads from an NBD backing (the hub, through its proxy). */
function diskBackedByNetwork(xml: string, target: string): boolean {
  for (const m of xml.matchAll(/<disk\b[^>]*>([\s\S]*?)<\/disk>/g)) {
    if (new RegExp(`<target\\b[^>]*dev=['"]${target}['"]`).test(m[1])) return readsFromNetwork(m[1]);
  }
  return false;
}

/** The domain's XML with no disk reading from a network backing (the overlays made local, with no backing left). */
function withoutNetworkBackings(xml: string): string {
  return xml.replace(/<disk\b[^>]*>[\s\S]*?<\/disk>/g, (disk) => (readsFromNetwork(disk) ? withoutBackingStores(disk) : disk));
}

/** The file a disk `target` of the domain reads and writes (an instant recovery's overlay). */
function diskSourceFile(xml: string, target: string): string | null {
  for (const m of xml.matchAll(/<disk\b[^>]*>([\s\S]*?)<\/disk>/g)) {
    if (new RegExp(`<target\\b[^>]*dev=['"]${target}['"]`).test(m[1])) return /<source\b[^>]*\bfile=['"]([^'"]+)['"]/.exec(m[1])?.[1] ?? null;
  }
  return null;
}

/** `virsh blockjob --info --raw`: the job's bytes copied and to copy, or null when the disk has no job. */
export function blockJobBytes(info: string): { cur: number; end: number } | null {
  const cur = /^\s*cur=(\d+)\s*$/m.exec(info);
  const end = /^\s*end=(\d+)\s*$/m.exec(info);
  return cur && end ? { cur: Number(cur[1]), end: Number(end[1]) } : null;
}

/** Created exclusively, then journaled: a file already there is not the restore's to remove, and fails it. */
async function createOwnFile(file: string, journal: RestoreJournal): Promise<void> {
  await writeFile(file, '', { flag: 'wx', mode: 0o644 }).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'EEXIST' ? new RestoreConflict(`${file} already exists`) : error;
  });
  await journal.addFile(file);
}

/** Each rename whose source is still there; safe to run again after a crash between two of them. */
async function finishRenames(state: RestoreJournalState): Promise<void> {
  for (const r of state.renames) if (await exists(r.from)) await rename(r.from, r.to);
}

/** Below this much free space on the overlay's filesystem, a copy that stopped stopped for want of space. */
const PULL_MIN_FREE = 4 * 1024 * 1024;
/**
 * Below this much free space, a copy that stopped twice in a row without being seen running stopped for want of
 * space: qemu fails an allocation (a cluster and its metadata, the stream job's next piece) while statfs may still
 * show a few MiB (seen in CI: ten restarts, each stopping at once, on an ext4 with more than PULL_MIN_FREE left).
 */
const PULL_LOW_FREE = 64 * 1024 * 1024;
/** A copy restarted this often in a row without being seen running stalls: it is started again at the slower pace. */
const PULL_STOPS = 10;
/** How often a stalled copy looks again at what holds it. */
const STALL_CHECK_MS = 5000;

const exists = (path: string) => stat(path).then(() => true, () => false);
