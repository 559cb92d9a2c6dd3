import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsUUID, Matches } from 'class-validator';

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ID_MESSAGE = (field: string) => `${field} must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`;

export class SyncPointsQueryDto {
  @ApiPropertyOptional({ description: 'the repository whose points are listed; may be left out when the hub has exactly one' })
  @IsOptional()
  @IsUUID('4', { message: 'repositoryId must be a uuid' })
  repositoryId?: string;
}

export class SyncPointParams {
  @ApiProperty()
  @Matches(ID, { message: ID_MESSAGE('restorePointId') })
  id: string;
}

export class SyncPointDiskParams extends SyncPointParams {
  @ApiProperty()
  @Matches(ID, { message: ID_MESSAGE('diskId') })
  diskId: string;
}
