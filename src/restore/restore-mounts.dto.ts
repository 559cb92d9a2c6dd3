import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, IsUUID, Matches, Max, MaxLength, Min, MinLength } from 'class-validator';
import { MAX_LIST_LIMIT } from './mounting';
import { IDENTIFIER_PATTERN as ID } from '../wire/identifiers';

const ID_MESSAGE = (field: string) => `${field} must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`;
const VOLUME = /^(p[1-9][0-9]{0,3}|disk)$/;
const VOLUME_MESSAGE = 'volume must be a volume id as the mount lists it: p1, p2, ... or disk';
const MAX_PATH = 4096;

export class CreateRestoreMountDto {
  @ApiProperty({ example: 'rp-2026-01-01T00-00-00Z' })
  @IsString()
  @Matches(ID, { message: ID_MESSAGE('restorePointId') })
  restorePointId: string;

  @ApiPropertyOptional({ example: 'disk0', description: 'required when the restore point has more than one disk' })
  @IsOptional()
  @IsString()
  @Matches(ID, { message: ID_MESSAGE('diskId') })
  diskId?: string;
}

export class MountIdParams {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('4', { message: 'mount id must be a uuid' })
  id: string;
}

export class ListRestoreMountsFilter {
  @ApiPropertyOptional({ enum: ['mounting', 'ready', 'failed', 'released'] })
  @IsOptional()
  @IsIn(['mounting', 'ready', 'failed', 'released'])
  status?: 'mounting' | 'ready' | 'failed' | 'released';

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @Matches(ID, { message: ID_MESSAGE('restorePointId') })
  restorePointId?: string;
}

class VolumeQuery {
  @ApiPropertyOptional({ example: 'p1', description: 'may be left out when the mount has exactly one browsable volume' })
  @IsOptional()
  @IsString()
  @Matches(VOLUME, { message: VOLUME_MESSAGE })
  volume?: string;
}

export class ListFilesQuery extends VolumeQuery {
  @ApiPropertyOptional({ example: 'etc/nginx', description: 'relative to the volume root; empty or missing for the root' })
  @IsOptional()
  @IsString()
  @MaxLength(MAX_PATH)
  path?: string;

  @ApiPropertyOptional({ default: 500, maximum: MAX_LIST_LIMIT })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'limit must be an integer' })
  @Min(1)
  @Max(MAX_LIST_LIMIT)
  limit?: number;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page' })
  @IsOptional()
  @IsString()
  @MaxLength(MAX_PATH)
  cursor?: string;
}

export class FileQuery extends VolumeQuery {
  @ApiProperty({ example: 'etc/hostname', description: 'relative to the volume root' })
  @IsString()
  @MinLength(1, { message: 'path must name a file' })
  @MaxLength(MAX_PATH)
  path: string;
}

export class ArchiveQuery extends VolumeQuery {
  @ApiPropertyOptional({ example: 'home/alice', description: 'directory relative to the volume root; empty or missing for the whole volume' })
  @IsOptional()
  @IsString()
  @MaxLength(MAX_PATH)
  path?: string;

  @ApiPropertyOptional({ enum: ['tar.gz', 'zip'], default: 'tar.gz' })
  @IsOptional()
  @IsIn(['tar.gz', 'zip'])
  format?: 'tar.gz' | 'zip';
}
