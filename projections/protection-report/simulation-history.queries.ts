import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { SimulationHistory, SimulationHistoryQuery } from '../../src/policies/simulate/queries/simulation-history.query';

@QueryHandler(SimulationHistoryQuery)
export class SimulationHistoryHandler implements IQueryHandler<SimulationHistoryQuery, SimulationHistory> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ repositoryId }: SimulationHistoryQuery): Promise<SimulationHistory> {
    const vms: { vm_id: string; name: string; agent_id: string }[] = await this.dataSource.query(`SELECT vm_id, name, agent_id FROM rm_protection_vms ORDER BY vm_id`);
    const jobs: { vm_id: string; type: 'full' | 'incremental'; synthesized_from: string | null; started_at: Date; finished_at: Date; bytes_written: string }[] = await this.dataSource.query(
      `SELECT vm_id, type, synthesized_from, started_at, finished_at, bytes_written::text FROM rm_protection_jobs
        WHERE outcome = 'completed' AND repository_id = $1 AND type IS NOT NULL AND started_at IS NOT NULL AND finished_at IS NOT NULL
        ORDER BY started_at, job_id`,
      [repositoryId],
    );
    return {
      vms: vms.map((v) => ({ vmId: v.vm_id, name: v.name, agentId: v.agent_id })),
      backups: jobs.map((j) => ({ vmId: j.vm_id, type: j.type, synthesizedFrom: j.synthesized_from, startedAt: j.started_at.toISOString(), finishedAt: j.finished_at.toISOString(), bytes: Number(j.bytes_written) })),
    };
  }
}
