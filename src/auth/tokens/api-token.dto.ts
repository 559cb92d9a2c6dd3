import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Matches } from 'class-validator';
import { ISSUABLE_ROLES, type IssuableRole } from '../../http/roles';

export class IssueApiTokenDto {
  @ApiProperty({ example: 'prometheus', description: 'becomes the actor of every event this token causes' })
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, { message: 'name must be 1-63 characters of a-z 0-9 . _ - starting with a letter or digit' })
  name: string;

  @ApiPropertyOptional({
    enum: ISSUABLE_ROLES,
    default: 'operator',
    description: 'admin: everything; operator: backups, restores, mounts, policies (no tokens, agents or repositories); viewer: reads only',
  })
  @IsOptional()
  @IsIn(ISSUABLE_ROLES, { message: `role must be one of ${ISSUABLE_ROLES.join(', ')}` })
  role?: IssuableRole;
}
