import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Matches, Max, Min } from 'class-validator';

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
  fromRevision?: number;

  @ApiPropertyOptional({ minimum: 1, maximum: 1000 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
}
