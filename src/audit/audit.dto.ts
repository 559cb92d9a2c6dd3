import { Type } from 'class-transformer';
import { IsInt, IsOptional, Matches, Max, Min } from 'class-validator';

export class StreamIdParams {
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/, { message: 'streamId must be 1-200 characters of A-Z a-z 0-9 . _ : -' })
  streamId: string;
}

export class CorrelationIdParams {
  @Matches(/^[A-Za-z0-9._:-]{1,128}$/, { message: 'correlationId must be 1-128 characters of A-Z a-z 0-9 . _ : -' })
  correlationId: string;
}

export class AuditPageQuery {
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  fromRevision?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
}
