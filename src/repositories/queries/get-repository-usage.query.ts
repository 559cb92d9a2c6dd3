import { Query } from '@nestjs/cqrs';

/** A repository's points' bytes over time and when at their pace they fill its filesystem. */
export interface RepositoryUsage {
  repositoryId: string;
  /** The total after the last change of each hour in which the points changed, oldest first; empty for a tenant's token. */
  samples: { at: string; usedBytes: number }[];
  /** The bytes of the points it holds now (for a tenant's token, of its own VMs' points). */
  pointsBytes: number;
  /** The filesystem's free space, measured now; null when it could not be. */
  freeBytes: number | null;
  /** From the last ESTIMATE_WINDOW_DAYS of samples whatever `days` is, so it matches the repository's details; null for a tenant's token. */
  growthBytesPerDay: number | null;
  estimatedFullAt: string | null;
}

/** 404 when the repository does not exist or was removed. `days`: how far back the samples go. `tenantId`: null for every tenant's points. */
export class GetRepositoryUsageQuery extends Query<RepositoryUsage> {
  constructor(
    readonly repositoryId: string,
    readonly days: number,
    readonly tenantId: string | null = null,
  ) {
    super();
  }
}
