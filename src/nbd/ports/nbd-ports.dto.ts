import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsString, Matches, Max, Min } from 'class-validator';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const ID_MESSAGE = (field: string) => `${field} must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`;

export class AllocatePortDto {
  @ApiProperty({ example: 'job-42' })
  @IsString()
  @Matches(ID_PATTERN, { message: ID_MESSAGE('jobId') })
  jobId: string;

  @ApiProperty({ example: 'disk0' })
  @IsString()
  @Matches(ID_PATTERN, { message: ID_MESSAGE('diskId') })
  diskId: string;
}

export class PortParams {
  @Type(() => Number)
  @IsInt({ message: 'port must be an integer' })
  @Min(1)
  @Max(65535)
  port: number;
}

export class JobIdParams {
  @Matches(ID_PATTERN, { message: ID_MESSAGE('jobId') })
  jobId: string;
}
