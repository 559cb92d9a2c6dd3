import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { DomainError } from '../eventing/domain-error';
import { CHUNK_STORE_DIR } from './chunks/chunk-points';
import { CommandGateway } from '../projection-runner/command-gateway';
import { ProjectionsService } from '../projection-runner/projections.service';
import { measureCapacity } from './adapters/capacity';
import { refuseWithoutImmutableFiles } from './adapters/immutable-files';
import { markRepository, realRoot, refuseForeignRoot, unmarkRepository } from './adapters/repository-root';
import { RepositoryMounts } from './adapters/repository-mounts';
import { RecordCapacitySampleCommand } from './commands/record-capacity-sample.command';
import { RegisterRepositoryCommand } from './commands/register-repository.command';
import { RemoveRepositoryCommand } from './commands/remove-repository.command';
import { ActiveRepositoriesQuery } from './queries/active-repositories.query';
import { RepositoriesService } from './registry/repositories.service';
import { refuseOverlap, refuseRoot } from './registry/repository.aggregate';
import { CifsSource, NfsSource, RepositoryDefinition, RepositoryEncryption, RepositoryKind, RepositoryLayout } from './registry/repository.events';
import { imageKeys, ImageKeyError, readKeyFile } from '../qemu/image-keys';

export interface RegisterRepository {
  name: string;
  kind: RepositoryKind;
  immutableDays: number | null;
  maxChainDepth: number;
  encryption: { keyFile: string } | null;
  layout: RepositoryLayout;
  path?: string;
  nfs?: NfsSource;
  cifs?: CifsSource;
}

const READ_MODEL = 'repositories';

/**
 * A repository's life on this host: its root is attached before it is recorded and given back
 * after it is removed, network repositories are mounted again at start, and capacity is sampled
 * on a timer.
 */
@Injectable()
export class RepositoryLifecycleWorkflow implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('repositories');
  private timer?: NodeJS.Timeout;

  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly commands: CommandBus,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly projections: ProjectionsService,
    private readonly repositories: RepositoriesService,
    private readonly mounts: RepositoryMounts,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.projections.waitForCaughtUp(READ_MODEL);
    for (const repo of await this.queries.execute(new ActiveRepositoriesQuery())) {
      const definition = await this.repositories.definition(repo.repositoryId);
      if (repo.kind !== 'local') await this.mounts.attach(definition).catch((e) => this.logger.error(`could not remount repository ${repo.name}: ${String(e)}`));
      if (definition.encryption) this.warnWithoutKey(definition);
    }
    this.timer = setInterval(() => void this.sampleAll(), this.config.capacityIntervalMs);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /** Refused before anything is created or mounted; a root that was attached is given back if recording fails. */
  async register(input: RegisterRepository): Promise<{ repositoryId: string }> {
    const definition = await this.define(randomUUID(), input);
    refuseOverlap(definition, await this.queries.execute(new ActiveRepositoriesQuery()));
    if (definition.kind === 'local') await refuseForeignRoot(definition.root);
    await this.mounts.attach(definition);
    let marked = false;
    try {
      marked = await markRepository(definition.root, { repositoryId: definition.repositoryId, name: definition.name });
      if (definition.immutableDays) await refuseWithoutImmutableFiles(definition.root);
      // its points' exports open the store and refuse a missing one (a mistyped path is no new, empty store)
      if (definition.layout === 'chunks') for (const dir of ['packs', 'points']) await mkdir(join(definition.root, CHUNK_STORE_DIR, dir), { recursive: true, mode: 0o750 });
      const { repositoryId } = await this.gateway.execute(new RegisterRepositoryCommand(definition, await measureCapacity(definition.root)), READ_MODEL);
      return { repositoryId };
    } catch (error) {
      if (marked) await unmarkRepository(definition.root).catch(() => undefined);
      await this.mounts.detach(definition).catch(() => undefined);
      throw error;
    }
  }

  async remove(repositoryId: string): Promise<void> {
    const definition = await this.repositories.definition(repositoryId);
    await this.gateway.execute(new RemoveRepositoryCommand(repositoryId), READ_MODEL);
    imageKeys.unregister(definition.root);
    await this.mounts.detach(definition).catch((e) => this.logger.error(`could not unmount repository ${definition.name}: ${String(e)}`));
  }

  async sampleAll(): Promise<void> {
    for (const repo of await this.queries.execute(new ActiveRepositoriesQuery()).catch(() => [])) {
      try {
        await this.commands.execute(new RecordCapacitySampleCommand(repo.repositoryId, await measureCapacity(repo.root)));
      } catch (error) {
        this.logger.warn(`capacity of repository ${repo.name} could not be sampled: ${String(error)}`);
      }
    }
  }

  /** Started without the key, the hub still runs: that repository's operations are refused until the key file is back (image-keys.ts). */
  private warnWithoutKey(definition: RepositoryDefinition): void {
    try {
      imageKeys.keyFileForRoot(definition.root);
    } catch (error) {
      this.logger.error(`${(error as Error).message}; its backups, restores, verifies, deletes and syncs are refused until the key file is there`);
    }
  }

  private async define(repositoryId: string, input: RegisterRepository): Promise<RepositoryDefinition> {
    const base = { repositoryId, name: input.name, kind: input.kind, nfs: null, cifs: null, immutableDays: input.immutableDays, maxChainDepth: input.maxChainDepth, encryption: this.encryption(input), layout: input.layout };
    if (input.kind === 'local') {
      // both the path as given and where its symlinks lead must pass: a link to /etc is /etc
      const root = await realRoot(input.path!);
      const dataDir = await realRoot(this.config.dataDir);
      refuseRoot(resolve(input.path!), dataDir);
      refuseRoot(root, dataDir);
      return { ...base, root };
    }
    const root = join(this.config.dataDir, 'mounts', repositoryId);
    if (input.kind === 'nfs') return { ...base, root, nfs: input.nfs! };
    if (!existsSync(input.cifs!.passwordFile)) throw new DomainError('invalid', `passwordFile ${input.cifs!.passwordFile} does not exist`);
    return { ...base, root, cifs: input.cifs! };
  }

  private encryption(input: RegisterRepository): RepositoryEncryption | null {
    if (!input.encryption) return null;
    try {
      return { keyFile: input.encryption.keyFile, fingerprint: readKeyFile(input.encryption.keyFile).fingerprint };
    } catch (error) {
      if (error instanceof ImageKeyError) throw new DomainError('invalid', error.message);
      throw error;
    }
  }
}
