import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { pgClientConfig, DbConnection } from '../database/db-connection';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { DomainError } from '../eventing/domain-error';
import { AdvisoryLocks } from './advisory-locks';
import { ProjectionRunner, readCheckpoint, resetProjection } from './projection-runner';
import { Projector, PROJECTORS } from './projector';

export const DB_CONNECTION = Symbol('DB_CONNECTION');

export interface ProjectionStatus {
  name: string;
  position: string | null;
  lag: number | null;
  leader: boolean;
  lastError: string | null;
}

@Injectable()
export class ProjectionsService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('projections');
  private readonly runners: Map<string, ProjectionRunner>;
  private readonly locks: AdvisoryLocks;

  constructor(
    @Inject(PROJECTORS) projectors: Projector[],
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(DB_CONNECTION) connection: DbConnection,
    private readonly dataSource: DataSource,
  ) {
    this.locks = new AdvisoryLocks(pgClientConfig(connection));
    this.runners = new Map(
      projectors.map((p) => [
        p.name,
        new ProjectionRunner(p, store, dataSource, this.locks, {
          onError: (name, error) => this.logger.error(`projection ${name} failed and will retry: ${error instanceof Error ? error.message : String(error)}`),
        }),
      ]),
    );
  }

  /** Started at module init, before any feature's bootstrap hook waits for a read model to catch up. */
  onModuleInit(): void {
    for (const runner of this.runners.values()) runner.start();
  }

  /** Runs last at shutdown, after features recorded their final events, so read models end up current. */
  async onApplicationShutdown(): Promise<void> {
    await Promise.all(
      [...this.runners.values()].map(async (runner) => {
        if (runner.status().leader) await this.waitForCaughtUp(runner.projector.name, 5_000);
        await runner.stop();
      }),
    );
    await this.locks.close();
  }

  names(): string[] {
    return [...this.runners.keys()];
  }

  /**
   * The projections this process applies that have failed every try for `forMs` or longer (an event they cannot
   * apply): their read models, and every report and list read from them, stand still while the hub answers.
   */
  stuck(now: Date, forMs: number): { name: string; since: Date; error: string }[] {
    return [...this.runners.values()].flatMap((r) => {
      const { leader, failingSince, lastError } = r.status();
      return leader && failingSince && now.getTime() - failingSince.getTime() >= forMs ? [{ name: r.projector.name, since: failingSince, error: lastError ?? '' }] : [];
    });
  }

  /** Which projections this process applies, from memory (no database round trip). */
  leadership(): { name: string; leader: boolean }[] {
    return [...this.runners.values()].map((r) => ({ name: r.projector.name, leader: r.status().leader }));
  }

  async list(): Promise<ProjectionStatus[]> {
    return Promise.all(
      [...this.runners.values()].map(async (runner) => {
        const position = await readCheckpoint(this.dataSource, runner.projector.name);
        const { leader, lastError } = runner.status();
        return { name: runner.projector.name, position, lag: await this.store.countAfter(position, runner.projector.filter), leader, lastError };
      }),
    );
  }

  /** The position of the last event the read model has applied (null before its first). */
  checkpoint(name: string): Promise<string | null> {
    return readCheckpoint(this.dataSource, name);
  }

  async rebuild(name: string): Promise<void> {
    const runner = this.runners.get(name);
    if (!runner) throw new DomainError('not_found', `no projection named ${name}; known: ${this.names().join(', ')}`);
    this.logger.warn(`rebuilding projection ${name} from position zero`);
    await resetProjection(this.dataSource, runner.projector);
  }

  /** For answers after a failed command whose events' positions are unknown: wait until nothing is pending. */
  async waitForCaughtUp(name: string, timeoutMs = 10_000): Promise<void> {
    await this.waitFor(name, '\uffff', timeoutMs);
  }

  /** Read-your-writes: resolves once the projection has applied everything up to `position` that it cares about. */
  async waitFor(name: string, position: string | null, timeoutMs = 10_000): Promise<void> {
    const runner = this.runners.get(name);
    if (!runner || position === null) return;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const checkpoint = await readCheckpoint(this.dataSource, name);
      if (checkpoint !== null && checkpoint >= position) return;
      if ((await this.store.countAfter(checkpoint, runner.projector.filter)) === 0) return;
      if (Date.now() > deadline) {
        this.logger.warn(`projection ${name} did not reach ${position} within ${timeoutMs} ms`);
        return;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
