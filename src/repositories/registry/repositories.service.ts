import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { DataSource } from 'typeorm';
import { RepositoryView } from '../../../projections/repositories/repository.entity';
import { RestorePointView } from '../../../projections/restore-points/restore-point.entity';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { DomainError } from '../../eventing/domain-error';
import { ExportPathPolicy } from '../../nbd/exports/export-path-policy';
import { ProjectionsService } from '../../projection-runner/projections.service';
import { measureCapacity } from './capacity';
import { cifsCredentials, cifsMountCommand, nfsMountCommand, unmountCommand } from './mount-commands';
import { MountRunner } from './mount-runner';
import { repositoryAggregate } from './repository.aggregate';
import { Capacity, CifsSource, NfsSource, RepositoryDefinition, RepositoryKind, repositoryStream } from './repository.events';

export interface RegisterRepository {
  name: string;
  kind: RepositoryKind;
  path?: string;
  nfs?: NfsSource;
  cifs?: CifsSource;
}

const READ_MODEL = 'repositories';

@Injectable()
export class RepositoriesService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('repositories');
  private readonly mounts = new MountRunner();
  private timer?: NodeJS.Timeout;

  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly aggregates: AggregateRepository,
    private readonly dataSource: DataSource,
    private readonly projections: ProjectionsService,
    private readonly exportPaths: ExportPathPolicy,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.projections.waitForCaughtUp(READ_MODEL);
    for (const repo of await this.activeViews()) {
      if (repo.kind !== 'local') await this.attach(await this.definition(repo.repositoryId)).catch((e) => this.logger.error(`could not remount repository ${repo.name}: ${String(e)}`));
      this.exportPaths.addRoot(repo.root);
    }
    this.timer = setInterval(() => void this.sampleAll(), this.config.capacityIntervalMs);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  async register(input: RegisterRepository): Promise<{ repositoryId: string; position: string | null }> {
    const repositoryId = randomUUID();
    const definition = await this.define(repositoryId, input);
    await this.refuseDuplicates(definition);
    await this.attach(definition);
    try {
      const capacity = await measureCapacity(definition.root);
      await this.aggregates.execute(repositoryStream(repositoryId), repositoryAggregate, { kind: 'register', definition });
      const sampled = await this.aggregates.execute(repositoryStream(repositoryId), repositoryAggregate, { kind: 'sample', capacity, thresholdPercent: this.config.lowSpacePercent });
      this.exportPaths.addRoot(definition.root);
      return { repositoryId, position: sampled.position };
    } catch (error) {
      await this.detach(definition).catch(() => undefined);
      throw error;
    }
  }

  async remove(repositoryId: string): Promise<string | null> {
    const definition = await this.definition(repositoryId);
    const points = await this.dataSource.getRepository(RestorePointView).countBy({ repositoryId });
    if (points > 0) throw new DomainError('conflict', `repository ${definition.name} holds ${points} restore point(s); delete them first`);
    const result = await this.aggregates.execute(repositoryStream(repositoryId), repositoryAggregate, { kind: 'remove' });
    this.exportPaths.removeRoot(definition.root);
    await this.detach(definition).catch((e) => this.logger.error(`could not unmount repository ${definition.name}: ${String(e)}`));
    return result.position;
  }

  /** The definition as the events say, for an active repository; 404 otherwise. */
  async definition(repositoryId: string): Promise<RepositoryDefinition> {
    const { state } = await this.aggregates.load(repositoryStream(repositoryId), repositoryAggregate);
    if (state.status !== 'active' || !state.definition) throw new DomainError('not_found', `repository ${repositoryId} does not exist`);
    return state.definition;
  }

  async capacity(repositoryId: string): Promise<Capacity> {
    return measureCapacity((await this.definition(repositoryId)).root);
  }

  async activeViews(): Promise<RepositoryView[]> {
    return this.dataSource.getRepository(RepositoryView).find({ where: { status: 'active' }, order: { registeredAt: 'ASC' } });
  }

  async sampleAll(): Promise<void> {
    for (const repo of await this.activeViews().catch(() => [])) {
      try {
        const capacity = await measureCapacity(repo.root);
        await this.aggregates.execute(repositoryStream(repo.repositoryId), repositoryAggregate, { kind: 'sample', capacity, thresholdPercent: this.config.lowSpacePercent });
      } catch (error) {
        this.logger.warn(`capacity of repository ${repo.name} could not be sampled: ${String(error)}`);
      }
    }
  }

  private async define(repositoryId: string, input: RegisterRepository): Promise<RepositoryDefinition> {
    const base = { repositoryId, name: input.name, kind: input.kind, nfs: null, cifs: null };
    if (input.kind === 'local') {
      const root = resolve(input.path!);
      if (isInside(root, join(this.config.dataDir, 'postgres')) || root === resolve('/')) throw new DomainError('invalid', `${root} cannot hold a repository`);
      if (existsSync(root) && !statSync(root).isDirectory()) throw new DomainError('invalid', `${root} exists and is not a directory`);
      return { ...base, root };
    }
    const root = join(this.config.dataDir, 'mounts', repositoryId);
    if (input.kind === 'nfs') return { ...base, root, nfs: input.nfs! };
    if (!existsSync(input.cifs!.passwordFile)) throw new DomainError('invalid', `passwordFile ${input.cifs!.passwordFile} does not exist`);
    return { ...base, root, cifs: input.cifs! };
  }

  private async refuseDuplicates(definition: RepositoryDefinition): Promise<void> {
    for (const other of await this.activeViews()) {
      if (other.name === definition.name) throw new DomainError('conflict', `a repository named ${definition.name} already exists (${other.repositoryId})`);
      if (isInside(definition.root, other.root) || isInside(other.root, definition.root) || other.root === definition.root) {
        throw new DomainError('conflict', `${definition.root} overlaps repository ${other.name} at ${other.root}`);
      }
    }
  }

  /** Local: make sure the directory exists. NFS/CIFS: mount it under the data dir (unverified here: no kernel modules). */
  private async attach(definition: RepositoryDefinition): Promise<void> {
    mkdirSync(definition.root, { recursive: true, mode: 0o750 });
    if (definition.kind === 'local' || isMountPoint(definition.root)) return;
    try {
      if (definition.nfs) await this.mounts.run(nfsMountCommand(definition.nfs, definition.root));
      if (definition.cifs) {
        const credentials = `${definition.root}.credentials`;
        writeFileSync(credentials, cifsCredentials(definition.cifs.username, readFileSync(definition.cifs.passwordFile, 'utf8').trim()), { mode: 0o600 });
        chmodSync(credentials, 0o600);
        await this.mounts.run(cifsMountCommand(definition.cifs, definition.root, credentials));
      }
    } catch (error) {
      rmSync(definition.root, { recursive: true, force: true });
      throw new DomainError('invalid', `could not mount the ${definition.kind} repository: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private async detach(definition: RepositoryDefinition): Promise<void> {
    if (definition.kind === 'local') return;
    if (isMountPoint(definition.root)) await this.mounts.run(unmountCommand(definition.root));
    rmSync(`${definition.root}.credentials`, { force: true });
    try {
      rmdirSync(definition.root);
    } catch {
      /* not empty or already gone: leave it for the operator */
    }
  }
}

function isInside(path: string, root: string): boolean {
  return path.startsWith(root.endsWith(sep) ? root : root + sep);
}

function isMountPoint(path: string): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((line) => line.split(' ')[4] === path);
  } catch {
    return false;
  }
}
