import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Matches } from 'class-validator';
import { TENANT_ID, TENANT_ID_MESSAGE } from '../../tenancy/tenancy.events';
import { ISSUABLE_ROLES, type IssuableRole } from '../../eventing/roles';

export class IssueApiTokenDto {
  @ApiProperty({ example: 'prometheus', description: 'becomes the actor of every event this token causes' })
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, { message: 'name must be 1-63 characters of a-z 0-9 . _ - starting with a letter or digit' })
  name: string;

  @ApiPropertyOptional({
    enum: ISSUABLE_ROLES,
    default: 'operator',
    description: 'admin: everything; operator: backups, restores, mounts, policies (no tokens, agents or repositories); viewer: reads only; sync: another hub pulling restore points (lists them, reads their files and disks, nothing else)',
  })
  @IsOptional()
  @IsIn(ISSUABLE_ROLES, { message: `role must be one of ${ISSUABLE_ROLES.join(', ')}` })
  role?: IssuableRole;

  @ApiPropertyOptional({ example: 'acme', description: "confines the token to one tenant's agents, VMs, repositories and what they hold; operator or viewer only" })
  @IsOptional()
  @Matches(TENANT_ID, { message: TENANT_ID_MESSAGE })
  tenantId?: string;
}
