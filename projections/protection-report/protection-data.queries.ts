import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource, EntityManager } from 'typeorm';
import { PolicyDefinition } from '../../src/policies/policy.events';
import { BackupAwaitingRetention, BackupsAwaitingRetentionQuery, ProtectionData, ProtectionDataQuery, VmsWithPointsQuery } from '../../src/policies/retention/queries/protection-data.query';

type Db = Pick<EntityManager, 'query'>;

/**
 * How a report's reads are made: at once on the pool (a busy hub then answers in the slowest read's time, not
 * their sum), one after another in a transaction's one connection (the `?at=` replay), where pg would queue
 * them itself and warns that it will stop doing so.
 */
export function readerOf(db: Db): <T>(read: () => Promise<T>) => Promise<T> {
  if (db instanceof DataSource) return (read) => read();
  let previous: Promise<unknown> = Promise.resolve();
  return <T>(read: () => Promise<T>) => {
    const next = previous.then(read);
    previous = next.catch(() => undefined);
    return next;
  };
}

/** Shared by the live queries and the `?at=` replay (which reads temporary tables of the same names). */
export async function readProtectionData(db: Db, read = readerOf(db)): Promise<ProtectionData> {
  const [policies, vms] = await Promise.all([
    read((): Promise<{ policy_id: string; definition: PolicyDefinition; created_at: Date; deleted_at: Date | null }[]> => db.query(`SELECT policy_id, definition, created_at, deleted_at FROM rm_protection_policies ORDER BY name, policy_id`)),
    read((): Promise<{ vm_id: string; name: string; agent_id: string }[]> => db.query(`SELECT vm_id, name, agent_id FROM rm_protection_vms ORDER BY vm_id`)),
  ]);
  return {
    policies: policies.map((p) => ({ policyId: p.policy_id, definition: p.definition, createdAt: p.created_at, deletedAt: p.deleted_at })),
    vms: vms.map((v) => ({ vmId: v.vm_id, name: v.name, agentId: v.agent_id })),
  };
}

@QueryHandler(ProtectionDataQuery)
export class ProtectionDataHandler implements IQueryHandler<ProtectionDataQuery, ProtectionData> {
  constructor(private readonly dataSource: DataSource) {}

  execute(): Promise<ProtectionData> {
    return readProtectionData(this.dataSource);
  }
}

@QueryHandler(BackupsAwaitingRetentionQuery)
export class BackupsAwaitingRetentionHandler implements IQueryHandler<BackupsAwaitingRetentionQuery, BackupAwaitingRetention[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ windowMs }: BackupsAwaitingRetentionQuery): Promise<BackupAwaitingRetention[]> {
    const rows: { job_id: string; vm_id: string; repository_id: string; policy_id: string | null; finished_at: Date }[] = await this.dataSource.query(
      `SELECT job_id, vm_id, repository_id, policy_id, finished_at FROM rm_protection_jobs
        WHERE outcome = 'completed' AND NOT retention_decided AND finished_at >= now() - make_interval(secs => $1) ORDER BY finished_at, job_id`,
      [windowMs / 1000],
    );
    return rows.map((r) => ({ jobId: r.job_id, vmId: r.vm_id, repositoryId: r.repository_id, policyId: r.policy_id, finishedAt: r.finished_at }));
  }
}

@QueryHandler(VmsWithPointsQuery)
export class VmsWithPointsHandler implements IQueryHandler<VmsWithPointsQuery, string[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ repositoryId }: VmsWithPointsQuery): Promise<string[]> {
    const rows: { vm_id: string }[] = await this.dataSource.query(`SELECT DISTINCT vm_id FROM rm_protection_points WHERE repository_id = $1 ORDER BY vm_id`, [repositoryId]);
    return rows.map((r) => r.vm_id);
  }
}
