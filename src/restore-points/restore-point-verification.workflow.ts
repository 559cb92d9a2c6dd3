import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { mapAtOnce } from '../process';
import { clearWorkArea } from '../process/work-area';
import { CommandGateway } from '../projection-runner/command-gateway';
import { isChunkPointFile } from '../repositories/chunks/chunk-points';
import { chunkPointProblems } from '../repositories/chunks/point-server';
import { validateChain } from '../repositories/qcow2/chain-validator';
import { readDigestFile } from '../repositories/qcow2/digest-files';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { BlockDigests, DIGEST_BLOCK_SIZE } from '../wire/block-digests';
import { BlockMismatch, checkBlocks, openPoint, PointReader, pointExportAreaOf, UNREADABLE } from './adapters/block-reader';
import { ChainState, lineageOf, pointAndDescendants } from './chain.aggregate';
import { DigestCoverage, RestorePoint } from './chain.events';
import { ChainStates } from './chain-states';
import { RecordCorruptionCommand } from './commands/record-corruption.command';
import { RecordVerificationCommand } from './commands/record-verification.command';
import { FilesInUse, HeldFiles } from './files-in-use';
import { GetRestorePointQuery } from './queries/get-restore-point.query';
import { RepositoryRestorePointsQuery } from './queries/repository-restore-points.query';
import { blocksToCheck, coverageOf, DigestedPoint, readsOf, readsThrough } from './verification-plan';

const READ_MODEL = 'restore-points';
/** A badly damaged file would otherwise record one event per block; the rest is counted in the problems. */
const MAX_RECORDED_MISMATCHES = 100;
const PROGRESS_LOG_MS = 5_000;
const FILES_AT_ONCE = 8;

/** One block that did not read back as it was written. */
export interface VerifyMismatch extends BlockMismatch {
  /** The point whose digest failed: the block is in its file. */
  restorePointId: string;
  diskId: string;
  /** Later points that read the block through it, corrupt as well. */
  readsThrough: string[];
}

export interface ReadFigures {
  bytesRead: number;
  blocks: number;
  durationMs: number;
  mibPerSecond: number;
}

export interface PointVerifyResult extends ReadFigures {
  restorePointId: string;
  ok: boolean;
  /** 'none': the point was backed up before backups recorded digests and was checked structurally only. */
  digests: DigestCoverage;
  problems: string[];
  warnings: string[];
  mismatches: VerifyMismatch[];
}

export interface RepositoryVerifyResult extends ReadFigures {
  repositoryId: string;
  ok: boolean;
  points: { restorePointId: string; vmId: string; ok: boolean; digests: DigestCoverage; problems: string[] }[];
  mismatches: VerifyMismatch[];
}

/** Digests of one disk along a chain, loaded once per verify. */
type DiskDigests = Map<string, BlockDigests | null>;

/**
 * Verifying reads: every block a restore point's chain holds is read back through a read-only
 * view of the point (openPoint: the hub's own resolution of the chain, or qemu-nbd) and compared with the digest the agent recorded when it sent
 * it, on top of the structural checks (each file as qemu-img check checks it, the backing chain). A mismatch is recorded
 * against the point whose file holds the block, naming the later points that read it through.
 */
@Injectable()
export class RestorePointVerificationWorkflow implements OnModuleInit {
  private readonly logger = new Logger('verify');
  /** Real paths of the files verifies are reading. */
  private readonly held: HeldFiles;
  /** Where verifies and syncs run their exports (block-reader). */
  private readonly area: string;

  constructor(
    @Inject(HUB_CONFIG) config: HubConfig,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly chains: ChainStates,
    private readonly repositories: RepositoriesService,
    filesInUse: FilesInUse,
  ) {
    // a merge or rebase under a running verify would change what it reads (and qemu's locks would fail it midway)
    this.held = new HeldFiles(filesInUse, 'a verify is reading it');
    this.area = pointExportAreaOf(config.dataDir);
  }

  /**
   * What a hub killed mid-verify or mid-sync left in the exports' work area: their qemu-nbd (a SIGKILLed hub does
   * not take its children along) and directories. Before any workflow resumes (onApplicationBootstrap).
   */
  async onModuleInit(): Promise<void> {
    const left = await clearWorkArea(this.area);
    if (left.entries.length || left.processes.length) this.logger.warn(`removed what interrupted verifies and syncs left in ${this.area}: ${left.entries.length} work dir(s), export pid(s) ${left.processes.join(', ') || 'none'}`);
  }

  async verify(restorePointId: string): Promise<PointVerifyResult> {
    const view = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    const root = (await this.repositories.usable(view.repositoryId)).root;
    const state = await this.chains.load(view.vmId, view.repositoryId);
    const lineage = lineageOf(state, restorePointId);
    const disks = lineage.at(-1)!.disks;
    // One view per disk of the point itself, read as a restore of it reads: each block comes from the point that
    // wrote it last (a view per point of the lineage opened every backing file again for each one). The views are
    // opened while the files are checked.
    return this.holding(root, lineage, () =>
      withExports(root, this.area, disks, (exports) => this.logged(`restore point ${restorePointId}`, async (progress) => {
        const started = Date.now();
        const { problems, warnings } = await structuralChecks(root, lineage);
        const ids = new Set(lineage.map((p) => p.restorePointId));
        const digests = await loadDigests(root, state.points, (pointId, problem) => ids.has(pointId) && problems.push(problem));
        const coverage = coverageOf(disks.map((disk) => lineage.map((p) => digestedPoint(p, disk.diskId, digests))));
        const found: VerifyMismatch[] = [];
        let blocks = 0;
        // a chain that fails structurally cannot be exported reliably: its content is not read
        if (!problems.length) {
          for (const [i, disk] of disks.entries()) {
            const exported = await exports[i];
            if (exported instanceof Error) {
              problems.push(openProblem(disk.diskId, exported));
              continue;
            }
            for (const read of readsOf(blocksToCheck(lineage.map((p) => digestedPoint(p, disk.diskId, digests))))) {
              const result = await checkBlocks(exported.source, read.digests, { onBytes: progress.add });
              blocks += result.blocks;
              for (const m of result.mismatches) {
                const inPoint = read.pointOf(m.offset / DIGEST_BLOCK_SIZE);
                found.push({ restorePointId: inPoint, diskId: disk.diskId, ...m, readsThrough: laterReaders(state, inPoint, disk.diskId, m.offset, digests) });
              }
            }
          }
        }
        progress.stop();
        await this.recordMismatches(view.vmId, view.repositoryId, found);
        problems.push(...mismatchProblems(found));
        const verifiedAt = new Date().toISOString();
        await this.gateway.execute(new RecordVerificationCommand(view.vmId, view.repositoryId, restorePointId, problems, warnings, verifiedAt, coverage), READ_MODEL);
        return { restorePointId, ok: problems.length === 0, digests: coverage, problems, warnings, mismatches: found, ...figures(progress.bytes, blocks, started) };
      })),
    );
  }

  /**
   * Every point of every chain in the repository: each point's own blocks are read once, from its own
   * view; a point is then clean when neither it nor any point it reads a damaged block through failed.
   */
  /** `vmIds`: the VMs whose points the caller may act on (a tenant's); absent, every VM's. */
  async verifyRepository(repositoryId: string, vmIds?: ReadonlySet<string>): Promise<RepositoryVerifyResult> {
    const root = (await this.repositories.usable(repositoryId)).root;
    const views = (await this.queries.execute(new RepositoryRestorePointsQuery(repositoryId))).filter((v) => !vmIds || vmIds.has(v.vmId));
    return this.logged(`repository ${repositoryId}`, (progress) => this.verifyPoints(repositoryId, root, views, progress));
  }

  private async verifyPoints(repositoryId: string, root: string, views: readonly { vmId: string }[], progress: Progress): Promise<RepositoryVerifyResult> {
    const started = Date.now();
    const result: RepositoryVerifyResult = { repositoryId, ok: true, points: [], mismatches: [], bytesRead: 0, blocks: 0, durationMs: 0, mibPerSecond: 0 };
    for (const vmId of [...new Set(views.map((v) => v.vmId))]) {
      const state = await this.chains.load(vmId, repositoryId);
      await this.holding(root, state.points, async () => {
        const loadProblems = new Map<string, string[]>();
        const digests = await loadDigests(root, state.points, (pointId, problem) => loadProblems.set(pointId, [...(loadProblems.get(pointId) ?? []), problem]));
        const found: VerifyMismatch[] = [];
        const structural = new Map<string, { problems: string[]; warnings: string[] }>();
        for (const point of state.points) structural.set(point.restorePointId, await structuralChecks(root, lineageOf(state, point.restorePointId)));
        for (const point of state.points) {
          if (structural.get(point.restorePointId)!.problems.length) continue;
          for (const disk of point.disks) {
            const own = digests.get(key(point.restorePointId, disk.diskId));
            if (!own || !own.runs.length) continue;
            const read = await withExports(root, this.area, [disk], async ([opening]) => {
              const exported = await opening;
              return exported instanceof Error ? exported : checkBlocks(exported.source, own, { onBytes: progress.add });
            });
            if (read instanceof Error) {
              structural.get(point.restorePointId)!.problems.push(openProblem(disk.diskId, read));
              continue;
            }
            result.blocks += read.blocks;
            found.push(...read.mismatches.map((m) => ({ restorePointId: point.restorePointId, diskId: disk.diskId, ...m, readsThrough: laterReaders(state, point.restorePointId, disk.diskId, m.offset, digests) })));
          }
        }
        await this.recordMismatches(vmId, repositoryId, found);
        result.mismatches.push(...found);
        const verifiedAt = new Date().toISOString();
        for (const point of state.points) {
          const { problems, warnings } = structural.get(point.restorePointId)!;
          const lineage = lineageOf(state, point.restorePointId);
          const ids = new Set(lineage.map((p) => p.restorePointId));
          problems.push(...lineage.flatMap((l) => loadProblems.get(l.restorePointId) ?? []));
          problems.push(...mismatchProblems(found.filter((m) => ids.has(m.restorePointId) && (m.restorePointId === point.restorePointId || m.readsThrough.includes(point.restorePointId)))));
          const coverage = coverageOf(point.disks.map((d) => lineage.map((p) => digestedPoint(p, d.diskId, digests))));
          await this.gateway.execute(new RecordVerificationCommand(vmId, repositoryId, point.restorePointId, problems, warnings, verifiedAt, coverage), READ_MODEL);
          result.points.push({ restorePointId: point.restorePointId, vmId, ok: problems.length === 0, digests: coverage, problems });
        }
      });
    }
    progress.stop();
    result.ok = result.points.every((p) => p.ok);
    return { ...result, ...figures(progress.bytes, result.blocks, started) };
  }

  private async recordMismatches(vmId: string, repositoryId: string, found: VerifyMismatch[]): Promise<void> {
    for (const m of found.slice(0, MAX_RECORDED_MISMATCHES)) {
      const damage = { diskId: m.diskId, offset: m.offset, length: m.length, expected: m.expected, actual: m.actual };
      await this.gateway.execute(new RecordCorruptionCommand(vmId, repositoryId, m.restorePointId, damage, m.readsThrough), READ_MODEL);
    }
  }

  /** Marks the files of these points as being read (a delete of any of them is refused) while `work` runs. */
  private async holding<T>(root: string, points: readonly RestorePoint[], work: () => Promise<T>): Promise<T> {
    const files = await Promise.all(points.flatMap((p) => p.disks.map((d) => realpath(join(root, d.file)).catch(() => join(root, d.file)))));
    return this.held.during(files, work);
  }

  /** `work` with progress like a backup's: bytes read so far and the rate, in the hub's log every few seconds until it ends, however it ends. */
  private async logged<T>(what: string, work: (progress: Progress) => Promise<T>): Promise<T> {
    const progress = this.progress(what);
    try {
      return await work(progress);
    } finally {
      progress.stop();
    }
  }

  private progress(what: string): Progress {
    const started = Date.now();
    const p = { bytes: 0, add: (n: number) => void (p.bytes += n), stop: () => clearInterval(timer) };
    const timer = setInterval(() => {
      const s = (Date.now() - started) / 1000;
      this.logger.log(`verifying ${what}: ${(p.bytes / 1048576).toFixed(0)} MiB read, ${(p.bytes / 1048576 / s).toFixed(1)} MiB/s`);
    }, PROGRESS_LOG_MS);
    timer.unref();
    return p;
  }
}

/** Each disk's file opened read-only with its chain (or why it could not be) while `work` runs; all closed after. */
async function withExports<T>(root: string, area: string, disks: readonly { file: string }[], work: (exports: Promise<PointReader | Error>[]) => Promise<T>): Promise<T> {
  // a fresh Error either way: one thrown by Node's fs may come from another realm (under jest), where instanceof fails
  const exports = disks.map((disk) => openPoint(join(root, disk.file), area).catch((error: { message?: string }) => new Error(error?.message ?? String(error))));
  try {
    return await work(exports);
  } finally {
    for (const exported of await Promise.all(exports)) if (!(exported instanceof Error)) await exported.close();
  }
}

const key = (restorePointId: string, diskId: string) => `${restorePointId}/${diskId}`;

interface Progress {
  bytes: number;
  add(bytes: number): void;
  stop(): void;
}

async function structuralChecks(root: string, lineage: RestorePoint[]): Promise<{ problems: string[]; warnings: string[] }> {
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const disk of lineage.at(-1)?.disks ?? []) {
    if (isChunkPointFile(disk.file)) {
      // a chunk point's index is whole and stands alone: it is checked, not the chain before it
      problems.push(...(await chunkPointProblems(join(root, disk.file), disk.virtualSize)).map((p) => `${disk.diskId}: ${p}`));
      continue;
    }
    const links = lineage.map((p) => p.disks.find((d) => d.diskId === disk.diskId)!).map((d) => ({ file: d.file, parentFile: d.parentFile, virtualSize: d.virtualSize, fileBytes: d.fileBytes }));
    const result = await validateChain(root, links);
    problems.push(...result.problems.map((p) => `${disk.diskId}: ${p}`));
    warnings.push(...result.warnings.map((w) => `${disk.diskId}: ${w}`));
  }
  return { problems, warnings };
}

/** Every digest file the chain's manifests name; a missing or damaged one is a problem (and counts as no digests). */
async function loadDigests(root: string, points: readonly RestorePoint[], problem: (restorePointId: string, problem: string) => unknown): Promise<DiskDigests> {
  const files = points.flatMap((point) => point.disks.map((disk) => ({ point, disk })));
  // not one after the other: a chain of 201 points has 201 of them, each a wait on the disk
  const sets = await mapAtOnce(files, FILES_AT_ONCE, ({ point, disk }) =>
    disk.digests
      ? readDigestFile(root, disk.digests).catch((e: Error) => {
          problem(point.restorePointId, `${disk.diskId}: ${point.restorePointId}: ${e.message}`);
          return null;
        })
      : Promise.resolve(null),
  );
  return new Map(files.map(({ point, disk }, i) => [key(point.restorePointId, disk.diskId), sets[i]]));
}

function digestedPoint(point: RestorePoint, diskId: string, digests: DiskDigests): DigestedPoint {
  return { restorePointId: point.restorePointId, digests: digests.get(key(point.restorePointId, diskId)) ?? null };
}

/** The points after `restorePointId` in its chain that read the block at `offset` from it. */
function laterReaders(state: ChainState, restorePointId: string, diskId: string, offset: number, digests: DiskDigests): string[] {
  const later = pointAndDescendants(state, restorePointId)
    .slice(1)
    .filter((p) => p.disks.some((d) => d.diskId === diskId))
    .map((p) => digestedPoint(p, diskId, digests));
  return readsThrough(later, Math.floor(offset / DIGEST_BLOCK_SIZE));
}

function openProblem(diskId: string, error: Error): string {
  return `${diskId}: the point's chain cannot be opened: ${error.message}`;
}

function mismatchProblems(found: VerifyMismatch[]): string[] {
  const shown = found.slice(0, MAX_RECORDED_MISMATCHES).map((m) => `${m.diskId}: block at offset ${m.offset} (${m.length} bytes) of ${m.restorePointId} ${m.actual.startsWith(UNREADABLE) ? m.actual : `does not match its digest: expected ${m.expected}, read ${m.actual}`}`);
  if (found.length > shown.length) shown.push(`and ${found.length - shown.length} more damaged blocks`);
  return shown;
}

function figures(bytesRead: number, blocks: number, started: number): ReadFigures {
  const durationMs = Date.now() - started;
  return { bytesRead, blocks, durationMs, mibPerSecond: durationMs > 0 ? Math.round((bytesRead / 1048576 / (durationMs / 1000)) * 10) / 10 : 0 };
}
