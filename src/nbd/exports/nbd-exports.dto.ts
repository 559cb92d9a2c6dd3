import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { AllocatePortDto } from '../ports/nbd-ports.dto';

/** An export is a port lease for a job's disk plus what to serve on it. */
export class StartExportDto extends AllocatePortDto {
  @ApiProperty({ example: '/var/lib/sendense/repositories/main/vm1/disk0/rp1.qcow2' })
  @IsString()
  @MaxLength(4096)
  @Matches(/^\//, { message: 'file must be an absolute path' })
  file: string;

  @ApiPropertyOptional({ enum: ['qcow2', 'raw'], default: 'qcow2' })
  @IsOptional()
  @IsIn(['qcow2', 'raw'])
  format?: 'qcow2' | 'raw';

  @ApiPropertyOptional({ default: false })
  @IsOptional()
  @IsBoolean()
  readOnly?: boolean;

  @ApiPropertyOptional({ description: 'persistent dirty bitmap to expose as qemu:dirty-bitmap:NAME' })
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { message: 'bitmap must be 1-64 characters of A-Z a-z 0-9 . _ -' })
  bitmap?: string;
}

export class LeaseIdParams {
  @Matches(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, { message: 'leaseId must be a uuid' })
  leaseId: string;
}
