import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { DomainError } from '../../src/eventing/domain-error';
import { measureCapacity } from '../../src/repositories/adapters/capacity';
import { GetRepositoryUsageQuery, RepositoryUsage } from '../../src/repositories/queries/get-repository-usage.query';
import { ESTIMATE_WINDOW_DAYS, estimateUsage, UsageEstimate, UsageSample } from '../../src/repositories/usage-estimate';
import { RepositoryView } from '../repositories/repository.entity';
import { TOTAL_BYTES } from './repository-usage.projector';

type Db = Pick<DataSource, 'query'>;

const DAY_MS = 86_400_000;

/**
 * The repository's points' bytes now (a chunks repository's: its store's, as last measured; for a tenant's token,
 * its own points' files, the indexes alone there, since a shared store's bytes are no one tenant's) and, for a token
 * that sees every tenant, its samples from `since` on and the total as it stood at `start` (the newest sample before
 * it): one statement, so all are of the same moment. A point is its VM's agent's tenant's, whichever tenant the
 * repository was given to (the agents' and tenancy read models live in the same database).
 */
async function read(db: Db, repositoryId: string, tenantId: string | null, since: Date, start: Date): Promise<{ pointsBytes: number; samples: UsageSample[]; atStart: number | null }> {
  const [row]: { bytes: string; samples: { at: string; usedBytes: number }[]; at_start: string | null }[] = await db.query(
    `SELECT (CASE WHEN $2::text IS NULL THEN ${TOTAL_BYTES} ELSE
              (SELECT COALESCE(sum(p.bytes), 0) FROM rm_repository_point_bytes p
                WHERE p.repository_id = $1
                  AND EXISTS (SELECT 1 FROM rm_vms v JOIN rm_tenancy t ON t.resource = 'agent' AND t.id = v.agent_id::text WHERE v.vm_id = p.vm_id AND t.tenant_id = $2)) END)::bigint AS bytes,
            CASE WHEN $2::text IS NULL THEN
              (SELECT COALESCE(jsonb_agg(jsonb_build_object('at', u.at, 'usedBytes', u.used_bytes) ORDER BY u.hour), '[]'::jsonb) FROM rm_repository_usage u
                WHERE u.repository_id = $1 AND u.hour >= $3::timestamptz - interval '1 hour' AND u.at >= $3)
            ELSE '[]'::jsonb END AS samples,
            CASE WHEN $2::text IS NULL THEN
              (SELECT u.used_bytes FROM rm_repository_usage u WHERE u.repository_id = $1 AND u.at < $4 ORDER BY u.hour DESC LIMIT 1)
            END AS at_start`,
    [repositoryId, tenantId, since, start],
  );
  return { pointsBytes: Number(row.bytes), samples: row.samples.map((s) => ({ at: new Date(s.at), usedBytes: Number(s.usedBytes) })), atStart: row.at_start === null ? null : Number(row.at_start) };
}

/**
 * The points' bytes now, the samples of the last `days`, and the estimate from the last 30 days: the total as it
 * stood when they began, each sample in them, and the total now, so a repository whose points stopped changing is
 * seen to (a flat line, not too little history). The history is the repository's as a whole, which would tell a
 * tenant how the other tenants' points grow: a tenant's token gets its own bytes, no samples and no estimate.
 */
export async function usageOf(db: Db, repositoryId: string, tenantId: string | null, freeBytes: number | null, now = new Date(), days = ESTIMATE_WINDOW_DAYS): Promise<{ pointsBytes: number; samples: UsageSample[] } & UsageEstimate> {
  const start = new Date(now.getTime() - ESTIMATE_WINDOW_DAYS * DAY_MS);
  const { pointsBytes, samples, atStart } = await read(db, repositoryId, tenantId, new Date(now.getTime() - Math.max(days, ESTIMATE_WINDOW_DAYS) * DAY_MS), start);
  if (tenantId) return { pointsBytes, samples: [], growthBytesPerDay: null, estimatedFullAt: null };
  const window = [...(atStart === null ? [] : [{ at: start, usedBytes: atStart }]), ...samples.filter((s) => s.at >= start), { at: now, usedBytes: pointsBytes }];
  return { pointsBytes, samples: samples.filter((s) => s.at.getTime() >= now.getTime() - days * DAY_MS), ...estimateUsage(window, freeBytes, now) };
}

@QueryHandler(GetRepositoryUsageQuery)
export class GetRepositoryUsageHandler implements IQueryHandler<GetRepositoryUsageQuery, RepositoryUsage> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ repositoryId, days, tenantId }: GetRepositoryUsageQuery): Promise<RepositoryUsage> {
    const view = await this.dataSource.getRepository(RepositoryView).findOneBy({ repositoryId, status: 'active' });
    if (!view) throw new DomainError('not_found', `repository ${repositoryId} does not exist`);
    const now = new Date();
    const freeBytes = (await measureCapacity(view.root).catch(() => null))?.freeBytes ?? null;
    const usage = await usageOf(this.dataSource, repositoryId, tenantId, freeBytes, now, days);
    return {
      repositoryId,
      samples: usage.samples.map((s) => ({ at: s.at.toISOString(), usedBytes: s.usedBytes })),
      pointsBytes: usage.pointsBytes,
      freeBytes,
      growthBytesPerDay: usage.growthBytesPerDay,
      estimatedFullAt: usage.estimatedFullAt,
    };
  }
}
