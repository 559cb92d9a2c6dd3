import { ClientConfig } from 'pg';
import { DataSource } from 'typeorm';
import { AdvisoryLocks } from './advisory-locks';
import { abortableSleep } from '../event-store/abortable-sleep';
import { EventStore, ReadMark } from '../event-store/event-store.port';
import { NOTIFY_CHANNEL } from '../event-store/postgres/postgres-event-store';
import { Projector } from './projector';

export interface RunnerOptions {
  batchSize?: number;
  /** Longest sleep when caught up (default 10 s): appends the store hears wake the runner sooner (see EventStore.waitForAppend). */
  idleWaitMs?: number;
  standbyRetryMs?: number;
  onError?: (projection: string, error: unknown) => void;
}

export interface RunnerStatus {
  name: string;
  leader: boolean;
  position: string | null;
  lastError: string | null;
  /** Since when every try of its batch has failed (null while it applies, or waits for events). */
  failingSince: Date | null;
}

const LOCK_NAMESPACE = 0x5e4d;

class CheckpointMovedError extends Error {}

/**
 * Runs one projector. Only the process holding the projection's advisory lock
 * applies events; the checkpoint row is locked and compared inside every batch
 * transaction, so even a runner that lost its lock cannot apply an event twice.
 */
export class ProjectionRunner {
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  private readonly locks: AdvisoryLocks;
  /** A session of its own (a runner alone, as tests and benches run one), which it closes when it stops. */
  private readonly ownLocks: boolean;
  /** The generation of the lock session in which this runner took its projection's lock; null while it does not lead. */
  private lockGeneration: number | null = null;
  private checkpointRowEnsured = false;
  private position: string | null = null;
  /**
   * The checkpoint as this runner's last batch left it, while it leads: read before a batch only when unknown (at
   * first, after a failed batch, on taking the lead), since the batch's own UPDATE checks it anyway; a batch with
   * nothing to apply reads it after, to see a rebuild.
   */
  private committed: string | null | undefined = undefined;
  private lastError: string | null = null;
  private failingSince: Date | null = null;
  private readonly batchSize: number;
  private readonly idleWaitMs: number;
  private readonly standbyRetryMs: number;

  constructor(
    readonly projector: Projector,
    private readonly store: EventStore,
    private readonly dataSource: DataSource,
    /** The hub's one lock session shared by all its runners, or a connection to open one for this runner alone. */
    locks: AdvisoryLocks | ClientConfig,
    private readonly options: RunnerOptions = {},
  ) {
    this.ownLocks = !(locks instanceof AdvisoryLocks);
    this.locks = locks instanceof AdvisoryLocks ? locks : new AdvisoryLocks(locks, `sendense-projection-${projector.name}`);
    // Live, a batch is whatever arrived since the last one; the size only bounds catch-up and
    // rebuild, where a larger transaction means fewer checkpoint writes and commits per event.
    this.batchSize = options.batchSize ?? 5000;
    this.idleWaitMs = options.idleWaitMs ?? 10_000;
    this.standbyRetryMs = options.standbyRetryMs ?? 1000;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    await this.releaseLock();
  }

  status(): RunnerStatus {
    return { name: this.projector.name, leader: this.leads(), position: this.position, lastError: this.lastError, failingSince: this.failingSince };
  }

  private leads(): boolean {
    return this.lockGeneration !== null && this.locks.holds(this.lockGeneration);
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let backoff = 100;
    while (!signal.aborted) {
      try {
        if (!(await this.holdLock())) {
          await abortableSleep(this.standbyRetryMs, signal);
          this.position = await readCheckpoint(this.dataSource, this.projector.name);
          continue;
        }
        const mark = this.store.readMark(this.projector.filter);
        const applied = await this.runBatch(mark);
        this.lastError = null;
        this.failingSince = null;
        backoff = 100;
        if (applied < this.batchSize) await this.store.waitForAppend(this.idleWaitMs, signal, mark);
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof CheckpointMovedError) continue;
        this.lastError = error instanceof Error ? error.message : String(error);
        this.failingSince ??= new Date();
        this.options.onError?.(this.projector.name, error);
        await abortableSleep(backoff, signal);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  /**
   * One batch: read after the checkpoint (as this runner's last batch left it, or as stored), move the checkpoint and
   * apply, all in one transaction: a crash anywhere in it leaves neither the batch's rows nor its checkpoint.
   */
  async runBatch(mark?: ReadMark): Promise<number> {
    const { name, filter } = this.projector;
    const known = this.committed;
    const checkpoint = known !== undefined ? known : await readCheckpoint(this.dataSource, name);
    this.position = checkpoint;
    this.committed = checkpoint;
    const events = await this.store.readAll({ after: checkpoint, filter, maxCount: this.batchSize, mark });
    if (events.length === 0) {
      // with nothing to apply no UPDATE checks the checkpoint: a rebuild that rewound it is seen here
      if (known !== undefined && (await readCheckpoint(this.dataSource, name)) !== known) return this.afresh(mark);
      return 0;
    }
    const last = events[events.length - 1].position;
    try {
      await this.dataSource.transaction(async (manager) => {
        // the checkpoint moved first, only if it is still where this batch was read from: the row stays locked until
        // the batch commits, so a second runner (one that lost its lock unawares) waits here and then finds it moved
        const [, moved]: [unknown, number] = await manager.query(
          `UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1 AND position IS NOT DISTINCT FROM $3`,
          [name, last, checkpoint],
        );
        if (moved !== 1) throw new CheckpointMovedError();
        if (this.projector.applyBatch) await this.projector.applyBatch(events, manager);
        else for (const event of events) await this.projector.apply(event, manager);
      });
    } catch (error) {
      this.committed = undefined;
      // what this runner last wrote is not where the checkpoint is (a rebuild, or a runner that led meanwhile)
      if (error instanceof CheckpointMovedError && known !== undefined) return this.afresh(mark);
      // a row deleted by hand would otherwise be a silent loop of batches read and rolled back: said, and retried later
      if (error instanceof CheckpointMovedError && !(await checkpointRowExists(this.dataSource, name))) throw new Error(`projection ${name} has no checkpoint row: rebuild it (POST /api/v1/projections/${name}/rebuild)`);
      throw error;
    }
    this.position = last;
    this.committed = last;
    return events.length;
  }

  /** The batch again from the checkpoint as stored. */
  private afresh(mark?: ReadMark): Promise<number> {
    this.committed = undefined;
    return this.runBatch(mark);
  }

  private async holdLock(): Promise<boolean> {
    if (this.leads()) return true;
    this.lockGeneration = null;
    // another process may have led and moved the checkpoint meanwhile
    this.committed = undefined;
    if (!this.checkpointRowEnsured) {
      await ensureCheckpointRow(this.dataSource, this.projector.name);
      this.checkpointRowEnsured = true;
    }
    this.lockGeneration = await this.locks.tryLock(LOCK_NAMESPACE, this.projector.name);
    return this.lockGeneration !== null;
  }

  private async releaseLock(): Promise<void> {
    const generation = this.lockGeneration;
    this.lockGeneration = null;
    if (generation !== null) await this.locks.unlock(LOCK_NAMESPACE, this.projector.name, generation);
    if (this.ownLocks) await this.locks.close();
  }
}

export async function ensureCheckpointRow(dataSource: DataSource, name: string): Promise<void> {
  await dataSource.query(`INSERT INTO projection_checkpoints (name, position) VALUES ($1, NULL) ON CONFLICT (name) DO NOTHING`, [name]);
}

async function checkpointRowExists(dataSource: DataSource, name: string): Promise<boolean> {
  return ((await dataSource.query(`SELECT 1 FROM projection_checkpoints WHERE name = $1`, [name])) as unknown[]).length > 0;
}

export async function readCheckpoint(dataSource: DataSource, name: string): Promise<string | null> {
  const rows: { position: string | null }[] = await dataSource.query(`SELECT position FROM projection_checkpoints WHERE name = $1`, [name]);
  return rows[0]?.position ?? null;
}

/** Empties the read model and rewinds the checkpoint in one transaction; the leader then replays from zero. */
export async function resetProjection(dataSource: DataSource, projector: Projector): Promise<void> {
  await ensureCheckpointRow(dataSource, projector.name);
  await dataSource.transaction(async (manager) => {
    await manager.query(`SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, [projector.name]);
    for (const table of projector.tables) await manager.query(`DELETE FROM "${table}"`);
    await manager.query(`UPDATE projection_checkpoints SET position = NULL, rebuilt_at = now(), updated_at = now() WHERE name = $1`, [
      projector.name,
    ]);
    // Delivered at commit to every hub's LISTEN: the runner, in whichever process leads, stops sleeping and replays.
    await manager.query(`SELECT pg_notify($1, $2)`, [NOTIFY_CHANNEL, `reset ${projector.name}`.slice(0, 200)]);
  });
}
