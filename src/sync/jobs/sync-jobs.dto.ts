import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, ArrayUnique, IsArray, IsInt, IsOptional, IsString, IsUUID, Length, Matches, Max, Min, ValidateNested } from 'class-validator';
import { RetentionDto } from '../../policies/policies.dto';

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class CreateSyncJobDto {
  @ApiProperty({ description: 'the remote hub the points are pulled from (POST /api/v1/remotes)' })
  @IsUUID('4', { message: 'remoteId must be a uuid' })
  remoteId: string;

  @ApiProperty({ description: "this hub's repository the points are written into" })
  @IsUUID('4', { message: 'repositoryId must be a uuid' })
  repositoryId: string;

  @ApiPropertyOptional({ description: "the remote's repository the points are read from; may be left out when the remote has exactly one" })
  @IsOptional()
  @IsUUID('4', { message: 'remoteRepositoryId must be a uuid' })
  remoteRepositoryId?: string;

  @ApiPropertyOptional({ type: [String], description: "only these VMs' points (default: every VM's)" })
  @IsOptional()
  @IsArray({ message: 'vms must be an array of VM ids' })
  @ArrayMinSize(1, { message: 'vms names at least one VM; leave it out for every VM' })
  @ArrayMaxSize(1000)
  @ArrayUnique({ message: 'vms names each VM once' })
  @IsString({ each: true })
  @Matches(ID, { each: true, message: 'each VM id must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit' })
  vms?: string[];

  @ApiPropertyOptional({ example: '30 2 * * *', description: 'm h dom mon dow (or with a leading seconds field): when the job runs by itself' })
  @IsOptional()
  @IsString()
  @Length(1, 200)
  schedule?: string;

  @ApiPropertyOptional({ type: RetentionDto, description: "this hub's own prune rules for the chains the job fills (PBS semantics), applied after each run; a point pruned on the remote stays here until these rules prune it" })
  @IsOptional()
  @ValidateNested()
  @Type(() => RetentionDto)
  retention?: RetentionDto;

  @ApiPropertyOptional({ example: 'Europe/Berlin', description: "the time zone of the schedule and of retention's calendar periods (default UTC)" })
  @IsOptional()
  @IsString()
  @Length(1, 100)
  timeZone?: string;

  @ApiPropertyOptional({ example: 52428800, description: 'read disk data from the remote no faster than this many bytes per second on average (default: no limit)' })
  @IsOptional()
  @IsInt({ message: 'maxBytesPerSecond must be a whole number of bytes per second' })
  @Min(1048576, { message: 'maxBytesPerSecond is at least 1048576 (1 MiB/s)' })
  @Max(1e12)
  maxBytesPerSecond?: number;
}

export class SyncJobIdParams {
  @ApiProperty()
  @IsUUID('4', { message: 'sync job id must be a uuid' })
  syncJobId: string;
}
