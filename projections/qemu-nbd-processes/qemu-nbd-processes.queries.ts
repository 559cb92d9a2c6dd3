import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { ExportedFileQuery } from '../../src/nbd/queries/exported-file.query';
import { QemuNbdProcessesQuery, QemuNbdProcessSummary } from '../../src/nbd/queries/qemu-nbd-processes.query';
import { QemuNbdProcessView } from './qemu-nbd-process.entity';

@QueryHandler(QemuNbdProcessesQuery)
export class QemuNbdProcessesHandler implements IQueryHandler<QemuNbdProcessesQuery, QemuNbdProcessSummary[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute(): Promise<QemuNbdProcessSummary[]> {
    const rows = await this.dataSource.getRepository(QemuNbdProcessView).find({ order: { requestedAt: 'ASC' } });
    return rows.map((r) => ({
      leaseId: r.leaseId,
      port: r.port,
      pid: r.pid,
      file: r.file,
      exportName: r.exportName,
      jobId: r.jobId,
      diskId: r.diskId,
      state: r.state,
      exitCode: r.exitCode,
      signal: r.signal,
      error: r.error,
      startedAt: r.startedAt,
      endedAt: r.endedAt,
    }));
  }
}

@QueryHandler(ExportedFileQuery)
export class ExportedFileHandler implements IQueryHandler<ExportedFileQuery, string | null> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ files }: ExportedFileQuery): Promise<string | null> {
    const rows: { file: string; lease_id: string }[] = await this.dataSource.query(
      `SELECT file, lease_id FROM rm_qemu_nbd_processes WHERE state IN ('starting', 'running') AND file = ANY($1::text[]) LIMIT 1`,
      [files],
    );
    return rows.length ? `${rows[0].file} is exported by NBD lease ${rows[0].lease_id}` : null;
  }
}
