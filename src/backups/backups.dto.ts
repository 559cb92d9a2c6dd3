import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, IsTimeZone, IsUUID, Matches, Max, Min } from 'class-validator';
import { IDENTIFIER_PATTERN as ID } from '../wire/identifiers';
import { IsInstant } from '../http/instants';

export class StartBackupDto {
  @ApiProperty({ example: 'pgtest1' })
  @IsString()
  @Matches(ID, { message: 'vmId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  vmId: string;

  @ApiProperty()
  @IsUUID('4', { message: 'repositoryId must be a uuid' })
  repositoryId: string;

  @ApiPropertyOptional({ enum: ['full', 'incremental', 'auto'], default: 'auto' })
  @IsOptional()
  @IsIn(['full', 'incremental', 'auto'])
  type?: 'full' | 'incremental' | 'auto';
}

export class JobIdParams {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('4', { message: 'jobId must be a uuid' })
  jobId: string;
}

export class ListBackupsQuery {
  @ApiPropertyOptional()
  @IsOptional()
  @Matches(ID, { message: 'vmId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  vmId?: string;

  @ApiPropertyOptional({ enum: ['queued', 'preparing', 'snapshot', 'transferring', 'finalizing', 'completed', 'failed'], description: 'a phase' })
  @IsOptional()
  @IsIn(['queued', 'preparing', 'snapshot', 'transferring', 'finalizing', 'completed', 'failed'])
  status?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 500, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page' })
  @IsOptional()
  @Matches(/^[A-Za-z0-9_-]{1,200}$/, { message: 'cursor is malformed' })
  cursor?: string;
}

export class ReportQuery {
  @ApiProperty({ example: '2026-11-01T00:00:00Z' })
  @IsInstant('from must be an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T00:00:00Z')
  from: string;

  @ApiProperty({ example: '2026-11-15T00:00:00Z' })
  @IsInstant('to must be an ISO 8601 date or time, e.g. 2026-11-15 or 2026-11-15T00:00:00Z')
  to: string;

  @ApiPropertyOptional({ example: 'Europe/Berlin', default: 'UTC', description: "the zone whose days the per-day counts follow" })
  @IsOptional()
  @IsTimeZone({ message: 'timezone must be an IANA time zone, e.g. Europe/Berlin' })
  timezone?: string;
}

/** What the API answers about a job: the OpenAPI document's description, from which the console's types are generated. */
export class BackupJobDiskResponse {
  @ApiProperty() diskId: string;
  @ApiProperty() bytesDone: number;
  @ApiProperty() bytesPlanned: number;
  @ApiProperty({ description: 'bytes per second' }) rate: number;
  @ApiProperty() bytesWritten: number;
  @ApiProperty() done: boolean;
}

export class DiskLeftOutResponse {
  @ApiProperty({ example: 'vdb' }) diskId: string;
  @ApiProperty({ example: "type='network' disks are not supported (only file-backed images)" }) reason: string;
}

export class BackupJobResponse {
  @ApiProperty({ format: 'uuid' }) jobId: string;
  @ApiProperty() vmId: string;
  @ApiProperty({ format: 'uuid' }) agentId: string;
  @ApiProperty({ format: 'uuid' }) repositoryId: string;
  @ApiProperty({ enum: ['queued', 'running', 'completed', 'failed'] }) status: 'queued' | 'running' | 'completed' | 'failed';
  @ApiProperty({ enum: ['queued', 'preparing', 'snapshot', 'transferring', 'finalizing', 'completed', 'failed'] }) phase: string;
  @ApiProperty({ enum: ['full', 'incremental', 'auto'] }) requestedType: string;
  @ApiProperty({ enum: ['full', 'incremental'], nullable: true, type: String }) type: string | null;
  @ApiProperty({ nullable: true, type: String }) typeReason: string | null;
  @ApiProperty({ nullable: true, type: String }) restorePointId: string | null;
  @ApiProperty({ type: [BackupJobDiskResponse] }) disks: BackupJobDiskResponse[];
  @ApiProperty({ type: [DiskLeftOutResponse], description: "disks of the VM that hold data its agent cannot read (a network or block device, an unsupported format): the job's point does not hold them" })
  disksLeftOut: DiskLeftOutResponse[];
  @ApiProperty() bytesWritten: number;
  @ApiProperty({ nullable: true, type: String }) error: string | null;
  @ApiProperty({ nullable: true, type: String }) failedPhase: string | null;
  @ApiProperty() cancelRequested: boolean;
  @ApiProperty({ format: 'date-time' }) requestedAt: string;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) startedAt: string | null;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) finishedAt: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'the position of the last event this answer reflects: a client following GET /api/v1/live applies only later ones' })
  asOf: string | null;
}

export class BackupJobPageResponse {
  @ApiProperty({ type: [BackupJobResponse] }) jobs: BackupJobResponse[];
  @ApiProperty({ nullable: true, type: String, description: 'pass as cursor for the next page' }) nextCursor: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'as on a job' }) asOf: string | null;
}
