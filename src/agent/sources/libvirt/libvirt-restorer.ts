import { randomUUID } from 'node:crypto';
import { chmod, chown, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { RestoreCheckRequest, RestoreStartRequest } from '../../../wire/restore-protocol';
import type { RestoreJournal, RestoreJournalState } from '../../restore-journal';
import { parseDomainXml } from './domain-xml';
import type { LibvirtSource } from './libvirt-source';
import { minimalDomainXml, restoredDomainXml } from './restored-domain';

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
    private readonly opts: { workDir: string; swtpmDir?: string; log: (level: 'info' | 'warn' | 'error', message: string) => void },
  ) {}

  /** Checks the target and says where each disk is written. Nothing is created yet. */
  async plan(req: RestoreCheckRequest): Promise<RestoreDiskPlan[]> {
    if (req.target.kind === 'replace') return this.planReplace(req, req.target.vmId);
    const { name } = req.target;
    if (await this.source.virsh(['domuuid', name]).then(() => true, () => false)) throw new RestoreConflict(`a domain named ${name} already exists`);
    if (!req.configuration && !req.definition) throw new RestoreConflict(`restore point ${req.restorePointId} holds no configuration: name memoryMiB and vcpus for the new domain`);
    if (req.configuration) {
      const targets = new Set(parseDomainXml(req.configuration.domainXml).disks.map((d) => d.target));
      const unknown = req.disks.filter((d) => !targets.has(d.diskId));
      if (unknown.length) throw new Error(`the recorded domain has no disk ${unknown.map((d) => d.diskId).join(', ')}`);
    }
    const dir = req.target.storageDir ?? (await this.defaultStorageDir());
    const plans: RestoreDiskPlan[] = [];
    for (const d of req.disks) {
      const file = join(dir, `${name}-${d.diskId}.qcow2`);
      if (await exists(file)) throw new RestoreConflict(`${file} already exists`);
      plans.push({ diskId: d.diskId, virtualSize: d.virtualSize, format: 'qcow2', write: file, final: file, owner: null });
    }
    return plans;
  }

  private async planReplace(req: RestoreCheckRequest, vmId: string): Promise<RestoreDiskPlan[]> {
    const { info, running } = await this.source.domain(vmId);
    const state = (await this.source.virsh(['domstate', vmId])).trim();
    if (running || state !== 'shut off') throw new RestoreConflict(`domain ${info.name} is ${state}: shut it off before its disks are replaced`);
    const plans: RestoreDiskPlan[] = [];
    for (const d of req.disks) {
      const disk = info.disks.find((x) => x.target === d.diskId);
      if (!disk || disk.type !== 'file' || !disk.file) throw new RestoreConflict(`domain ${info.name} has no file-backed disk ${d.diskId} to replace`);
      const s = await stat(disk.file);
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
      const { info } = await this.source.domain(req.target.vmId);
      await journal.record({ phase: 'committing', renames: disks.map((d) => ({ from: d.write, to: d.final })) });
      for (const d of disks) {
        await chown(d.write, d.owner!.uid, d.owner!.gid);
        await chmod(d.write, d.owner!.mode);
      }
      await finishRenames(journal.state);
      // The checkpoints describe the replaced images' bitmaps, which went with them: the next backup is a full.
      const checkpoints = (await this.source.virsh(['checkpoint-list', info.uuid, '--name'])).split('\n').map((l) => l.trim()).filter(Boolean);
      for (const name of checkpoints) await this.source.virsh(['checkpoint-delete', info.uuid, name, '--metadata']);
      return { name: info.name, uuid: info.uuid, started: false, notes: checkpoints.length ? [`checkpoints removed: ${checkpoints.join(', ')}`] : [] };
    }
    const { name, start } = req.target;
    const storageDir = dirname(disks[0].final);
    const uuid = randomUUID();
    const spec = { name, uuid, disks: disks.map((d) => ({ target: d.diskId, file: d.final, format: d.format })), consoleLog: join(storageDir, `${name}.console.log`) };
    let xml: string;
    let notes: string[] = [];
    if (req.configuration) {
      let nvramFile: string | null = null;
      if (req.configuration.nvram) {
        nvramFile = join(storageDir, `${name}_VARS.fd`);
        await journal.addFile(nvramFile);
        await writeFile(nvramFile, Buffer.from(req.configuration.nvram, 'base64'), { flag: 'wx', mode: 0o600 });
      }
      if (req.configuration.tpm?.length) {
        const dir = join(this.opts.swtpmDir ?? '/var/lib/libvirt/swtpm', uuid);
        await journal.record({ dirs: [...journal.state.dirs, dir] });
        for (const f of req.configuration.tpm) {
          await mkdir(dirname(join(dir, f.name)), { recursive: true, mode: 0o711 });
          await writeFile(join(dir, f.name), Buffer.from(f.data, 'base64'), { mode: 0o600 });
        }
      }
      ({ xml, notes } = restoredDomainXml(req.configuration.domainXml, { ...spec, nvramFile }));
    } else {
      xml = minimalDomainXml({ ...req.definition!, virtType: await this.virtType() }, spec);
    }
    const xmlFile = join(this.opts.workDir, `restore-${req.restoreId}.xml`);
    await writeFile(xmlFile, xml);
    try {
      await journal.record({ domainUuid: uuid });
      await this.source.virsh(['define', xmlFile]);
    } finally {
      await rm(xmlFile, { force: true });
    }
    if (start) await this.source.virsh(['start', uuid]);
    return { name, uuid, started: start, notes };
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
    if (state.domainUuid) {
      const there = await this.source.virsh(['domuuid', state.domainUuid]).then(() => true, () => false);
      if (there) {
        await this.source.virsh(['destroy', state.domainUuid]).catch(() => undefined);
        await this.source.virsh(['undefine', state.domainUuid, '--checkpoints-metadata', '--nvram']).catch(() => this.source.virsh(['undefine', state.domainUuid!, '--checkpoints-metadata']));
        done.push(`undefined domain ${state.domainUuid}`);
      }
    }
    for (const file of [...state.files, ...state.renames.map((r) => r.from)]) if (await rm(file).then(() => true, () => false)) done.push(`removed ${file}`);
    for (const dir of state.dirs) if (await exists(dir)) await rm(dir, { recursive: true, force: true }).then(() => done.push(`removed ${dir}`));
    return done;
  }
}

/** Each rename whose source is still there; safe to run again after a crash between two of them. */
async function finishRenames(state: RestoreJournalState): Promise<void> {
  for (const r of state.renames) if (await exists(r.from)) await rename(r.from, r.to);
}

const exists = (path: string) => stat(path).then(() => true, () => false);
