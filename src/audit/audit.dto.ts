import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsUUID, Matches, Max, Min } from 'class-validator';
import { IDENTIFIER_PATTERN } from '../wire/identifiers';
import { IsEventPosition, IsInstant } from '../http/instants';

export class StreamIdParams {
  @ApiProperty({ example: 'backup-job-6c7e1a1e-0f4e-4d2a-9a3c-1b2c3d4e5f60' })
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/, { message: 'streamId must be 1-200 characters of A-Z a-z 0-9 . _ : -' })
  streamId: string;
}

export class CorrelationIdParams {
  @ApiProperty()
  @Matches(/^[A-Za-z0-9._:-]{1,128}$/, { message: 'correlationId must be 1-128 characters of A-Z a-z 0-9 . _ : -' })
  correlationId: string;
}

export class AuditPageQuery {
  @ApiPropertyOptional({ minimum: 0 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  // a revision is a bigint in the event store: 1e19 is an integer past it, and was a 500
  @Max(Number.MAX_SAFE_INTEGER)
  fromRevision?: number;

  @ApiPropertyOptional({ minimum: 1, maximum: 1000 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
}

export class SearchEventsQueryDto {
  @ApiPropertyOptional({ example: 'BackupCompleted', description: 'the event type' })
  @IsOptional()
  @Matches(/^[A-Za-z][A-Za-z0-9]{0,99}$/, { message: 'type must be an event type: 1-100 letters and digits' })
  type?: string;

  @ApiPropertyOptional({ example: 'backup-job-', description: 'streams whose id starts with this' })
  @IsOptional()
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/, { message: 'streamPrefix must be 1-200 characters of A-Z a-z 0-9 . _ : -' })
  streamPrefix?: string;

  @ApiPropertyOptional({ example: 'alice', description: "the token name (or admin, system) events record as their actor" })
  @IsOptional()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, { message: 'actor must be a token name: 1-63 characters of a-z 0-9 . _ -' })
  actor?: string;

  @ApiPropertyOptional({ example: 'vm1', description: "events whose data names this VM (`data.vmId`): a job's request, its restore point, restores, drills" })
  @IsOptional()
  @Matches(IDENTIFIER_PATTERN, { message: 'vmId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  vmId?: string;

  @ApiPropertyOptional({ format: 'uuid', description: "a backup's, a restore's or a drill's id: the events its request's correlation id carries" })
  @IsOptional()
  @IsUUID('4', { message: 'jobId must be a uuid' })
  jobId?: string;

  @ApiPropertyOptional({ description: 'recorded at or after (ISO 8601)' })
  @IsOptional()
  @IsInstant('from must be an ISO 8601 time, e.g. 2026-11-01T00:00:00Z')
  from?: string;

  @ApiPropertyOptional({ description: 'recorded before (ISO 8601)' })
  @IsOptional()
  @IsInstant('to must be an ISO 8601 time, e.g. 2026-11-15T00:00:00Z')
  to?: string;

  @ApiPropertyOptional({ description: 'the position of the last event of the previous page (its `next`)' })
  @IsOptional()
  @IsEventPosition('after must be an event position (a page\'s next)')
  after?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 1000, default: 100 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
}
