import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { HUB_INSTANCE } from '../config/hub-instance';
import { DATABASE_LOST_EXIT_CODE, DbConnection, pgClientConfig } from '../database/db-connection';
import { AdvisoryLocks } from './advisory-locks';
import { DB_CONNECTION } from './projections.service';

/** The advisory-lock namespace of hub processes' own locks (projections use others). */
const INSTANCE_LOCKS = 24_212;
/** How soon a hub takes its own lock again after its session to the database dropped. */
const REHOLD_MS = 5_000;
/** How long a connect or query on the liveness session may take before the session is given up. */
const LIVENESS_TIMEOUT_MS = 5_000;

/** For tests: how this process fences itself, and how often it looks at its lock. */
export const LIVENESS_OPTIONS = Symbol('LIVENESS_OPTIONS');

export interface LivenessOptions {
  /** How it fences itself: by default it exits at once, as a crash would, for its restart to recover its work. */
  fence?: (reason: string) => void;
  reholdMs?: number;
}

/**
 * Which hub processes are alive, as the database sees them: each process holds an advisory lock named after its
 * instance for as long as its session lives (PostgreSQL lets it go the moment the process or its connection dies,
 * and the process takes it again within seconds of reconnecting; it asks every 5 s whether its session still lives,
 * and gives a session up that takes over 5 s to answer).
 * A lock no session holds is a process that is not running now. A process restarted on its data dir recovers its own
 * work, so another hub takes that work over only once the owner has been found gone at every look for a long while
 * (OwnersGone, `SENDENSE_GONE_HUB_AFTER_S`): a crash and its restart, an upgrade, a reboot come back well within it.
 */
@Injectable()
export class HubLiveness implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('hub-liveness');
  private readonly locks: AdvisoryLocks;
  private held: number | null = null;
  private timer?: NodeJS.Timeout;
  /** When this process last knew it held its lock (took it, or its session answered). */
  private heldAt = Date.now();
  /** The looks in a row that could not take the lock. */
  private missedLooks = 0;
  private readonly fenceAfterMs: number | undefined;
  private readonly reholdMs: number;

  /**
   * A process that cannot hold its lock (cut off from the database, while another hub still reaches it) fences
   * itself once half of `SENDENSE_GONE_HUB_AFTER_S` passed since it last knew it held it, so that it has stopped,
   * its agents' sessions with it, before any other hub takes its work over. A process that cannot reach the
   * database can record nothing anyway; its restart recovers or stops what it left, as after a crash. Without a
   * config (a process that is no hub) it never fences itself.
   */
  constructor(
    @Inject(DB_CONNECTION) connection: DbConnection,
    @Inject(HUB_INSTANCE) private readonly instance: string,
    @Optional() @Inject(HUB_CONFIG) config?: Pick<HubConfig, 'goneHubAfterMs'>,
    @Optional() @Inject(LIVENESS_OPTIONS) private readonly options: LivenessOptions = {},
  ) {
    this.fenceAfterMs = config && config.goneHubAfterMs / 2;
    this.reholdMs = options.reholdMs ?? REHOLD_MS;
    // bounded: on a dead network path a connect or query would wait for TCP to give up (15 minutes), longer than a
    // takeover waits, and every look at another process's lock would wait behind it
    this.locks = new AdvisoryLocks({ ...pgClientConfig(connection), connectionTimeoutMillis: LIVENESS_TIMEOUT_MS, query_timeout: LIVENESS_TIMEOUT_MS }, 'sendense-liveness');
  }

  async onModuleInit(): Promise<void> {
    await this.hold();
    this.timer = setInterval(() => void this.hold(), this.reholdMs);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.locks.close();
  }

  /** Whether no live hub process is `instance`: never this one, and not when the database cannot tell. */
  async gone(instance: string): Promise<boolean> {
    if (instance === this.instance) return false;
    const generation = await this.locks.tryLock(INSTANCE_LOCKS, instance).catch(() => null);
    if (generation === null) return false;
    await this.locks.unlock(INSTANCE_LOCKS, instance, generation);
    return true;
  }

  private async hold(): Promise<void> {
    if (this.held !== null) await this.locks.ping();
    if (this.held !== null && this.locks.holds(this.held)) {
      this.heldAt = Date.now();
      return;
    }
    this.held = await this.locks.tryLock(INSTANCE_LOCKS, this.instance).catch((e) => {
      this.logger.warn(`could not take this hub process's liveness lock, trying again in ${this.reholdMs} ms: ${String(e)}`);
      return null;
    });
    if (this.held !== null) {
      this.heldAt = Date.now();
      this.missedLooks = 0;
    } else {
      this.missedLooks++;
      this.fenceIfLong();
    }
  }

  /**
   * Never at the first look that missed the lock: a session just given up (its answer slow) may still hold it on the
   * server for a moment, and the next look takes it again.
   */
  private fenceIfLong(): void {
    const { fenceAfterMs } = this;
    const without = Date.now() - this.heldAt;
    if (fenceAfterMs === undefined || without < fenceAfterMs || this.missedLooks < 2) return;
    const reason = `this hub process has not held its liveness lock for ${Math.round(without / 1000)} s (the database unreachable or refusing it): other hubs take its work over after SENDENSE_GONE_HUB_AFTER_S, so it stops now and its restart recovers or stops what it left`;
    clearInterval(this.timer);
    (this.options.fence ?? exitFenced)(reason);
  }
}

function exitFenced(reason: string): never {
  // written at once: the logger's stream may not flush before the exit
  process.stderr.write(`sendense hub: ${reason}\n`);
  process.exit(DATABASE_LOST_EXIT_CODE);
}

/** Why work another hub takes over ended: the words backups and restores are failed with. */
export function leftByGoneProcess(phase: string | null, owner: string): string {
  return `left during ${phase} by hub process ${owner}, which stopped and did not come back`;
}

/**
 * The owners a sweep finds gone and that every sweep since the first that did found gone, for `afterMs` or more:
 * a process whose lock is missing for a moment (its session reconnecting, the process restarting) is not taken for
 * gone. An owner no sweep asked about is forgotten.
 */
export class OwnersGone {
  private goneSince = new Map<string, number>();

  constructor(
    private readonly liveness: Pick<HubLiveness, 'gone'>,
    private readonly afterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async sweep(owners: Iterable<string>): Promise<Set<string>> {
    const since = new Map<string, number>();
    for (const owner of new Set(owners)) if (await this.liveness.gone(owner)) since.set(owner, this.goneSince.get(owner) ?? this.now());
    this.goneSince = since;
    return new Set([...since].filter(([, from]) => this.now() - from >= this.afterMs).map(([owner]) => owner));
  }

  /**
   * One look (sweep) at the owners of `work`, then `take` of each piece whose owner is gone for good, one after another
   * until `stopped`. Each owner is asked again right before each take: a take can last minutes (a merge), and an owner
   * that came back meanwhile has taken its own work up again.
   */
  async takeOver<T>(work: readonly T[], ownerOf: (piece: T) => string, take: (piece: T, owner: string) => Promise<void>, stopped: () => boolean): Promise<void> {
    const gone = await this.sweep(work.map(ownerOf));
    for (const piece of work) {
      if (stopped()) return;
      const owner = ownerOf(piece);
      if (!gone.has(owner)) continue;
      if (!(await this.liveness.gone(owner))) {
        gone.delete(owner);
        this.goneSince.delete(owner);
        continue;
      }
      await take(piece, owner);
    }
  }
}
