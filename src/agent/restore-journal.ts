import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What a restore has made on this host so far, on disk before it is made: an agent killed mid-restore (or a
 * failed or cancelled restore) leaves nothing behind, because the next start, or the failure path, undoes
 * what the journal names. Once `committing`, every file is written and checked: the step is finished instead.
 */
export interface RestoreJournalState {
  restoreId: string;
  /**
   * writing: undone if it ends; committing: a replace renaming checked files, finished; pulling: a running instant
   * recovery, resumed; local: an instant recovery whose copy is done, its domain holding the only copy of what its
   * guest wrote: never undone, only reported to the hub.
   */
  phase: 'writing' | 'committing' | 'pulling' | 'local';
  /** Files this restore created (new disks, a UEFI store); removed when it is undone. */
  files: string[];
  /** Directories it created (a TPM state dir); removed when it is undone. */
  dirs: string[];
  /** A replace: the checked files renamed over the domain's own, done in `committing`. */
  renames: { from: string; to: string }[];
  /** The domain this restore defined (new-domain) or created (a drill's transient one), undefined when it is undone. */
  domainUuid: string | null;
  /** NBD proxies it started (instant boot): detached, stopped when it is undone. */
  proxyPids: number[];
  /** A running instant recovery: what a restarted agent needs to finish the background copy and report it. */
  instant?: { correlationId: string; causationId: string; name: string; uuid: string; diskIds: string[]; proxyDir: string };
}

const PREFIX = 'restore-';

export class RestoreJournal {
  private constructor(
    private readonly file: string,
    public state: RestoreJournalState,
  ) {}

  static async create(dir: string, restoreId: string): Promise<RestoreJournal> {
    const journal = new RestoreJournal(join(dir, `${PREFIX}${restoreId}.json`), { restoreId, phase: 'writing', files: [], dirs: [], renames: [], domainUuid: null, proxyPids: [] });
    await journal.save();
    return journal;
  }

  /** Journals left by restores that never ended (agent killed): each still to be undone or finished. */
  static async leftovers(dir: string): Promise<RestoreJournal[]> {
    const names = await readdir(dir).catch(() => [] as string[]);
    // a write the kill interrupted: the journal it was replacing is still there, whole
    for (const name of names.filter((n) => n.startsWith(PREFIX) && n.endsWith('.json.tmp'))) await rm(join(dir, name), { force: true });
    const out: RestoreJournal[] = [];
    for (const name of names.filter((n) => n.startsWith(PREFIX) && n.endsWith('.json'))) {
      const state = { proxyPids: [], ...JSON.parse(await readFile(join(dir, name), 'utf8')) } as RestoreJournalState;
      out.push(new RestoreJournal(join(dir, name), state));
    }
    return out;
  }

  /**
   * Written before the thing it names is made: the journal may name a file that never appeared, never the reverse.
   * The state changes only once written: a write that failed (a full disk) leaves it as the file has it, so an undo
   * acts on what was recorded (a `committing` not written is no licence to rename).
   */
  async record(change: Partial<Omit<RestoreJournalState, 'restoreId'>>): Promise<void> {
    const next = { ...this.state, ...change };
    await this.save(next);
    this.state = next;
  }

  /**
   * A file of this restore, named in memory whatever its write does: this process's undo removes it (the write
   * failing is no reason to leave a file of ours behind).
   */
  async addFile(path: string): Promise<void> {
    this.state = { ...this.state, files: [...this.state.files, path] };
    await this.save();
  }

  /** A file that turned out not to be this restore's: forgotten in memory first, so no undo of this process removes it. */
  async forgetFile(path: string): Promise<void> {
    this.state = { ...this.state, files: this.state.files.filter((f) => f !== path) };
    await this.save();
  }

  async remove(): Promise<void> {
    await rm(this.file, { force: true });
  }

  private async save(state = this.state): Promise<void> {
    const temp = `${this.file}.tmp`;
    await writeFile(temp, JSON.stringify(state));
    await rename(temp, this.file);
  }
}
