import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { join } from 'node:path';
import { DomainError } from '../eventing/domain-error';
import { currentContext, runWithContext } from '../eventing/request-context';
import { CommandGateway } from '../projection-runner/command-gateway';
import { CHUNK_STORE_DIR } from './chunks/chunk-points';
import { collectGarbage, GarbageMeasure, measureGarbage } from './chunks/gc';
import { setImmutable } from './adapters/immutable-files';
import { chunkStoreKey } from './chunks/point-server';
import { RecordChunkSpaceCommand } from './commands/record-chunk-space.command';
import { RepositoriesService } from './registry/repositories.service';
import { ChunkSpace, CollectionFigures, layoutOf, RepositoryDefinition } from './registry/repository.events';

/** Backups and deletes come in bursts (a policy's slot, a prune): one measure after the burst, not one per point. */
const SETTLE_MS = 1_000;
/** A collection that found writers at work is tried again this much later, a few times, then left to the next delete. */
const BUSY_RETRY_MS = 30_000;
const BUSY_RETRIES = 10;
const READ_MODEL = 'repositories';

export interface CollectionReport extends Required<CollectionFigures> {
  space: ChunkSpace;
}

/**
 * The saving a chunks repository makes, and its garbage collection (src/repositories/chunks/gc.ts): after backups
 * and deletes the store is measured (and, after deletes, collected) and the figures recorded on the repository's
 * stream, where the read model, the API, the CLI, /metrics and the console read them. One measure or collection at a
 * time per repository; a collection never runs under a writer (the store's lock says busy, and it is tried again).
 */
@Injectable()
export class ChunkSpaceWorkflow implements OnModuleDestroy {
  private readonly logger = new Logger('chunk-space');
  private readonly turns = new Map<string, Promise<unknown>>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; collect: boolean; retries: number }>();
  private stopping = false;

  constructor(
    private readonly gateway: CommandGateway,
    private readonly repositories: RepositoriesService,
  ) {}

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.turns.values()]);
  }

  /**
   * A backup into it or a delete from it ended: measure it soon, collecting first after a delete. Nothing for a
   * qcow2 repository. Recorded under the story of whatever asked last.
   */
  schedule(repositoryId: string, collect: boolean, retries = 0): void {
    if (this.stopping) return;
    const previous = this.timers.get(repositoryId);
    if (previous) clearTimeout(previous.timer);
    const context = currentContext();
    const entry = { collect: collect || !!previous?.collect, retries, timer: undefined as unknown as NodeJS.Timeout };
    entry.timer = setTimeout(() => {
      this.timers.delete(repositoryId);
      void runWithContext(context, () => this.scheduled(repositoryId, entry.collect, entry.retries));
    }, collect && retries > 0 ? BUSY_RETRY_MS : SETTLE_MS);
    entry.timer.unref();
    this.timers.set(repositoryId, entry);
  }

  private async scheduled(repositoryId: string, collect: boolean, retries: number): Promise<void> {
    try {
      const definition = await this.repositories.definition(repositoryId).catch(() => null);
      if (!definition || layoutOf(definition) !== 'chunks') return;
      if (!collect) {
        await this.measure(repositoryId);
        return;
      }
      const outcome = await this.inTurn(repositoryId, () => this.collectAndRecord(definition));
      if (outcome === 'busy') {
        // measured all the same: the garbage is there to see until a collection can run
        await this.measure(repositoryId);
        if (retries < BUSY_RETRIES) this.schedule(repositoryId, true, retries + 1);
      }
    } catch (error) {
      this.logger.error(`measuring the chunk store of repository ${repositoryId} failed: ${String(error)}`);
    }
  }

  /** Reads the store's indexes and records what it holds. */
  async measure(repositoryId: string): Promise<ChunkSpace> {
    const definition = await this.chunksRepository(repositoryId);
    return this.inTurn(repositoryId, async () => {
      const space = spaceOf(await measureGarbage(storeOf(definition), { key: await keyOf(definition), repack: repacks(definition) }));
      await this.gateway.execute(new RecordChunkSpaceCommand(repositoryId, space, null), READ_MODEL);
      return space;
    });
  }

  /** A collection now (the API's): what it freed and what the store holds after, or 409 while backups write into it. */
  async collect(repositoryId: string): Promise<CollectionReport> {
    const definition = await this.chunksRepository(repositoryId);
    const outcome = await this.inTurn(repositoryId, () => this.collectAndRecord(definition));
    if (outcome === 'busy') throw new DomainError('conflict', `repository ${definition.name} is being written (a backup or another collection): collect its garbage once that ends`);
    return outcome;
  }

  private async collectAndRecord(definition: RepositoryDefinition): Promise<CollectionReport | 'busy'> {
    const key = await keyOf(definition);
    // the packs of an immutable repository were sealed with the points that name them; no point names these any more
    const release = definition.immutableDays ? (file: string) => setImmutable([file], false) : undefined;
    const result = await collectGarbage(storeOf(definition), { key, repack: repacks(definition), ...(release ? { release } : {}) });
    if (result.status === 'busy') return 'busy';
    // the figures after the sweep: the collection's own mark was taken before it
    const space = spaceOf(await measureGarbage(storeOf(definition), { key, repack: repacks(definition) }));
    const collected = { packsRemoved: result.packsRemoved, packsRepacked: result.packsRepacked, bytesFreed: result.bytesFreed, durationMs: result.durationMs };
    await this.gateway.execute(new RecordChunkSpaceCommand(definition.repositoryId, space, collected), READ_MODEL);
    this.logger.log(`collected repository ${definition.name}: ${result.packsRemoved} pack(s) removed, ${result.packsRepacked} repacked, ${result.bytesFreed} bytes freed in ${result.durationMs} ms`);
    return { ...collected, space };
  }

  private async chunksRepository(repositoryId: string): Promise<RepositoryDefinition> {
    const definition = await this.repositories.usable(repositoryId);
    if (layoutOf(definition) !== 'chunks') throw new DomainError('invalid', `repository ${definition.name} has no chunk store: its layout is qcow2`);
    return definition;
  }

  private inTurn<T>(repositoryId: string, work: () => Promise<T>): Promise<T> {
    const run = (this.turns.get(repositoryId) ?? Promise.resolve()).catch(() => undefined).then(work);
    const settled = run.catch(() => undefined);
    this.turns.set(repositoryId, settled);
    void settled.then(() => {
      if (this.turns.get(repositoryId) === settled) this.turns.delete(repositoryId);
    });
    return run;
  }
}

function storeOf(definition: RepositoryDefinition): string {
  return join(definition.root, CHUNK_STORE_DIR);
}

/**
 * An immutable repository's packs are sealed with the points that name them: one partly garbage cannot be removed
 * for a copy of its live chunks, and waits until no point names it.
 */
function repacks(definition: RepositoryDefinition): boolean {
  return !definition.immutableDays;
}

function keyOf(definition: RepositoryDefinition): Promise<Buffer | null> {
  return chunkStoreKey(storeOf(definition));
}

function spaceOf(m: GarbageMeasure): ChunkSpace {
  return { pointDisks: m.pointDisks, logicalBytes: m.logicalBytes, uniqueBytes: m.uniqueBytes, liveBytes: m.liveBytes, storedBytes: m.storedBytes, collectableBytes: m.bytesToFree, deadBytesKept: m.deadBytesKept };
}
