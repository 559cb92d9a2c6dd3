import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { DomainError } from '../../src/eventing/domain-error';
import { measureCapacity } from '../../src/repositories/adapters/capacity';
import { ActiveRepositoriesQuery, RepositoryRecord } from '../../src/repositories/queries/active-repositories.query';
import { GetRepositoryQuery } from '../../src/repositories/queries/get-repository.query';
import { ListRepositoriesQuery } from '../../src/repositories/queries/list-repositories.query';
import { RepositoryDetails } from '../../src/repositories/queries/repository-details';
import { maxChainDepthOf } from '../../src/repositories/registry/repository.events';
import { usageOf } from '../repository-usage/repository-usage.queries';
import { RepositoryView } from './repository.entity';

function active(dataSource: DataSource): Promise<RepositoryView[]> {
  return dataSource.getRepository(RepositoryView).find({ where: { status: 'active' }, order: { registeredAt: 'ASC' } });
}

/** Capacity is measured when asked, not taken from the last sample: the sample is only recorded when it moved. */
async function details(v: RepositoryView, tenantId: string | null, dataSource: DataSource): Promise<RepositoryDetails> {
  const live = await measureCapacity(v.root).catch(() => null);
  // the chains' read model is the restore-points projection's, applied in the same database; a point is its VM's
  // agent's tenant's, whichever tenant the repository was given to. A point in the recycle bin is no restore point
  // any more, but its files take their space until it is purged.
  const [points] = await dataSource.query(
    `SELECT (count(*) FILTER (WHERE p.status <> 'recycled'))::int AS n, COALESCE(sum((SELECT sum((d->>'fileBytes')::bigint) FROM jsonb_array_elements(p.disks) d)), 0)::bigint AS bytes FROM rm_restore_points p
     WHERE p.repository_id = $1
       AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM rm_vms v JOIN rm_tenancy t ON t.resource = 'agent' AND t.id = v.agent_id::text WHERE v.vm_id = p.vm_id AND t.tenant_id = $2))`,
    [v.repositoryId, tenantId],
  );
  // the filesystem's used space counts every tenant's files: a tenant is told the size of its own points instead
  const usedBytes = tenantId ? Number(points.bytes) : (live?.usedBytes ?? null);
  // what the points can still grow into is the filesystem's free space, whoever else writes there
  const { pointsBytes, growthBytesPerDay, estimatedFullAt } = await usageOf(dataSource, v.repositoryId, tenantId, live?.freeBytes ?? null);
  return {
    repositoryId: v.repositoryId,
    name: v.name,
    kind: v.kind,
    path: v.root,
    source: v.source,
    immutableDays: v.immutableDays,
    layout: v.layout,
    // a chunk point's index is whole: nothing bounds a chain
    maxChainDepth: v.layout === 'chunks' ? null : maxChainDepthOf({ maxChainDepth: v.maxChainDepth ?? undefined }),
    encryption: v.encryption && { keyFile: v.encryption.keyFile, keyFingerprint: v.encryption.fingerprint },
    chunks: v.layout === 'chunks' ? chunkFigures(v) : null,
    totalBytes: live?.totalBytes ?? null,
    freeBytes: live?.freeBytes ?? null,
    usedBytes,
    pointsBytes,
    growthBytesPerDay,
    estimatedFullAt,
    lowSpace: v.lowSpace,
    restorePoints: points.n,
    registeredAt: v.registeredAt,
  };
}

@QueryHandler(ActiveRepositoriesQuery)
export class ActiveRepositoriesHandler implements IQueryHandler<ActiveRepositoriesQuery, RepositoryRecord[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute(): Promise<RepositoryRecord[]> {
    return (await active(this.dataSource)).map(({ repositoryId, name, kind, root, source, lowSpace, registeredAt }) => ({ repositoryId, name, kind, root, source, lowSpace, registeredAt }));
  }
}

@QueryHandler(ListRepositoriesQuery)
export class ListRepositoriesHandler implements IQueryHandler<ListRepositoriesQuery, RepositoryDetails[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ tenantId }: ListRepositoriesQuery): Promise<RepositoryDetails[]> {
    return Promise.all((await active(this.dataSource)).map((v) => details(v, tenantId, this.dataSource)));
  }
}

@QueryHandler(GetRepositoryQuery)
export class GetRepositoryHandler implements IQueryHandler<GetRepositoryQuery, RepositoryDetails> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ repositoryId, tenantId }: GetRepositoryQuery): Promise<RepositoryDetails> {
    const view = await this.dataSource.getRepository(RepositoryView).findOneBy({ repositoryId, status: 'active' });
    if (!view) throw new DomainError('not_found', `repository ${repositoryId} does not exist`);
    return details(view, tenantId, this.dataSource);
  }
}

/**
 * The saving, as operators compare it with other products: deduplication (protected bytes over distinct ones),
 * compression (distinct bytes over what they take stored) and the two together against every file of the store.
 * A tenant sees the repository's figures, not its own share: a chunk shared between tenants belongs to neither.
 */
function chunkFigures(v: RepositoryView): RepositoryDetails['chunks'] {
  const s = v.chunkSpace;
  const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : null);
  return {
    measuredAt: s?.measuredAt ?? null,
    pointDisks: s?.pointDisks ?? 0,
    logicalBytes: s?.logicalBytes ?? 0,
    uniqueBytes: s?.uniqueBytes ?? 0,
    storedBytes: s?.storedBytes ?? 0,
    garbageBytes: s ? s.collectableBytes + s.deadBytesKept : 0,
    collectableBytes: s?.collectableBytes ?? 0,
    deduplication: s ? ratio(s.logicalBytes, s.uniqueBytes) : null,
    compression: s ? ratio(s.uniqueBytes, s.liveBytes) : null,
    reduction: s ? ratio(s.logicalBytes, s.storedBytes) : null,
    lastCollection: v.lastCollection,
  };
}
