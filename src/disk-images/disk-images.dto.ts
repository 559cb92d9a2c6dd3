import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayMinSize, ArrayUnique, IsArray, IsBoolean, IsIn, IsOptional, IsString, IsUUID, Matches } from 'class-validator';
import { IDENTIFIER_PATTERN as ID } from '../wire/identifiers';

const ID_MESSAGE = (field: string) => `${field} must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`;

export class DiskImageParams {
  @Matches(ID, { message: ID_MESSAGE('restorePointId') })
  id: string;

  @Matches(ID, { message: ID_MESSAGE('diskId') })
  diskId: string;
}

export class DiskImageQuery {
  @ApiPropertyOptional({ enum: ['raw', 'qcow2'], default: 'raw' })
  @IsOptional()
  @IsIn(['raw', 'qcow2'], { message: 'format must be raw or qcow2' })
  format?: 'raw' | 'qcow2';

  @ApiPropertyOptional({ enum: ['true', 'false'], default: 'false', description: 'download a corrupt restore point anyway' })
  @IsOptional()
  @IsIn(['true', 'false'], { message: 'force must be true or false' })
  force?: 'true' | 'false';
}

export class PointIdParams {
  @ApiProperty()
  @Matches(ID, { message: ID_MESSAGE('restorePointId') })
  id: string;
}

export class ExportIdParams {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('4', { message: 'export id must be a uuid' })
  exportId: string;
}

export class OpenPointExportDto {
  @ApiPropertyOptional({ default: true, description: 'TLS with a pre-shared key of its own (in the answer); false only where SENDENSE_NBD_BIND is a loopback address' })
  @IsOptional()
  @IsBoolean({ message: 'tls must be a boolean' })
  tls?: boolean;

  @ApiPropertyOptional({ type: [String], description: 'default: every disk of the restore point' })
  @IsOptional()
  @IsArray({ message: 'diskIds must be an array of disk ids' })
  @ArrayMinSize(1, { message: 'diskIds, when given, names at least one disk' })
  @ArrayMaxSize(64)
  @ArrayUnique({ message: 'diskIds must not repeat a disk' })
  @IsString({ each: true })
  @Matches(ID, { each: true, message: ID_MESSAGE('each diskId') })
  diskIds?: string[];
}
