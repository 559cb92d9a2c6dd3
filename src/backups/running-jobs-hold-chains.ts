import { Injectable, OnModuleInit } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { pointOf } from '../restore-points/chain.aggregate';
import { RestorePoint } from '../restore-points/chain.events';
import { FilesInUse } from '../restore-points/files-in-use';
import { RestorePointsService } from '../restore-points/restore-points.service';
import { BackupJobState, isTerminal } from './backup-job.aggregate';
import { BackupJobReader } from './backup-job.reader';
import { JobsInProcess } from './jobs-in-process';
import { UnfinishedBackupJobsQuery } from './queries/unfinished-backup-jobs.query';

/**
 * A running incremental writes an overlay that reads through every older file of its chain, not
 * only through the file its export serves, and a synthetic full copies the view of the point it starts from and
 * combines the digests of that point's lineage: none of them may be deleted or merged until the job ends.
 */
@Injectable()
export class RunningJobsHoldChains implements OnModuleInit {
  constructor(
    private readonly filesInUse: FilesInUse,
    private readonly here: JobsInProcess,
    private readonly queries: QueryBus,
    private readonly jobs: BackupJobReader,
    private readonly points: RestorePointsService,
    private readonly repositories: RepositoriesService,
  ) {}

  onModuleInit(): void {
    this.filesInUse.register((files) => this.blocker(files));
  }

  private async blocker(files: string[]): Promise<string | null> {
    const wanted = new Set(files);
    // This process's jobs may not be in the read model yet; other hubs' jobs are only there.
    const unfinished = await this.queries.execute(new UnfinishedBackupJobsQuery());
    for (const jobId of new Set([...this.here.ids(), ...unfinished.map((j) => j.jobId)])) {
      const state = await this.jobs.find(jobId);
      const held = (state ? await this.heldFiles(state) : []).find((f) => wanted.has(f));
      if (held) return `${held} is in the backing chain of running backup job ${jobId}`;
    }
    return null;
  }

  /** Absolute paths, symlinks resolved, as the delete names them. */
  private async heldFiles(state: BackupJobState): Promise<string[]> {
    // a full reads nothing of the chain; a synthetic full (type full, with the point it copies) reads that point's lineage
    if (isTerminal(state) || state.phase === 'queued' || state.requestedType === 'full' || (state.type === 'full' && !state.synthesizedFrom)) return [];
    const chain = await this.points.chain(state.vmId!, state.repositoryId!);
    // Until the type is decided the job may continue from the newest point, so the whole chain is held.
    const lineage: RestorePoint[] = state.sincePointId ? [] : chain.points;
    for (let p = state.sincePointId ? pointOf(chain, state.sincePointId) : undefined; p; p = p.parentId ? pointOf(chain, p.parentId) : undefined) lineage.push(p);
    const root = (await this.repositories.definition(state.repositoryId!)).root;
    const relative = [...lineage.flatMap((p) => p.disks.map((d) => d.file)), ...state.targets.map((t) => t.file)];
    return Promise.all(relative.map((f) => realpath(join(root, f)).catch(() => join(root, f))));
  }
}
